"""schemathesis hooks for `crates/cli/tests/openapi.rs`.

Two operations may refuse a schema-valid request for a reason no JSON Schema
can express, and `docs/openapi.yaml` says so where they are described:

- `POST /v1/unwrap`: capsule bytes that are base64url but not a
  `DekEnvelope` (a binary format) are refused with 400 and a `capsule_*`
  reason, or `content_ciphertext_present`;
- `POST /v1/admin/clusters`: a `ca_pem` that holds no usable certificate,
  a `reader_token` that cannot be a bearer token, or a JWKS text that is not
  a JWKS is refused with 400 `invalid_argument` naming the field (no field
  names a file: the server reads none a request names);
- `POST /v1/admin/policies/digests`: withdrawing a digest the policy does
  not approve, or naming one digest in both lists, is refused with 400
  `invalid_argument` saying which.

The built-in positive-data check lets 400 through for those operations
only (see `schemathesis.toml`); this check then fails any other 400 there, so
a 400 still means the document is wrong.
"""

import json

import schemathesis

EXPLAINED_BAD_REQUESTS = {
    "POST /v1/unwrap": lambda problem: problem.get("gate") == "request"
    and (
        str(problem.get("reason", "")).startswith(("capsule_", "armor_"))
        or problem.get("reason") == "content_ciphertext_present"
    ),
    "POST /v1/admin/clusters": lambda problem: problem.get("gate") == "admin"
    and problem.get("reason") == "invalid_argument"
    and str(problem.get("detail", "")).startswith(("ca_pem", "reader_token", "jwks:")),
    "POST /v1/admin/policies/digests": lambda problem: problem.get("gate") == "admin"
    and problem.get("reason") == "invalid_argument"
    and (
        " is not approved for " in str(problem.get("detail", ""))
        or str(problem.get("detail", "")).endswith(" is both added and removed")
    ),
}


@schemathesis.check
def podseal_bad_requests_are_explained(ctx, response, case):
    """A 400 to a schema-valid request is one the document names."""
    meta = case.meta
    if meta is None or not meta.generation.mode.is_positive or response.status_code != 400:
        return None
    explained = EXPLAINED_BAD_REQUESTS.get(case.operation.label)
    if explained is None:
        return None  # the built-in positive_data_acceptance check fails it
    try:
        problem = json.loads(response.content)
    except ValueError:
        problem = {}
    if not isinstance(problem, dict) or not explained(problem):
        raise AssertionError(
            "a schema-valid request was refused with 400 for a reason the document does not name: "
            f"{problem.get('gate') if isinstance(problem, dict) else None}/"
            f"{problem.get('reason') if isinstance(problem, dict) else None}"
        )
    return None
