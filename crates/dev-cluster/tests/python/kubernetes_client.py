"""The stand-in as the official Python client (PyPI `kubernetes`) uses it.

Discovery through the dynamic client, pods, Secrets and
PodCertificateRequests. Run by crates/dev-cluster/tests/python_client.rs
against a running
stand-in with STANDIN_URL, STANDIN_CA, STANDIN_TOKEN (admin) and
STANDIN_NODE_UID set, and a running pod shop/api-0. Each check that fails
prints what it expected and exits 1.
"""

import base64
import datetime
import json
import os
import sys

from kubernetes import client, dynamic, watch
from kubernetes.client.rest import ApiException


def check(condition, what):
    if not condition:
        print(f"FAILED: {what}", file=sys.stderr)
        sys.exit(1)


def api_client():
    configuration = client.Configuration()
    configuration.host = os.environ["STANDIN_URL"]
    configuration.ssl_ca_cert = os.environ["STANDIN_CA"]
    configuration.api_key = {"authorization": "Bearer " + os.environ["STANDIN_TOKEN"]}
    return client.ApiClient(configuration)


def refused(call, status):
    """The ApiException `call` raises, which must carry `status`."""
    try:
        call()
    except ApiException as error:
        check(error.status == status, f"HTTP {status}, got {error.status}: {error.body}")
        return json.loads(error.body)
    check(False, f"HTTP {status}, got success")


def pods(api):
    core = client.CoreV1Api(api)
    listed = core.list_pod_for_all_namespaces()
    names = [p.metadata.name for p in listed.items]
    check(names == ["api-0"], f"list pods: {names}")
    check(listed.items[0].status.phase == "Running", "api-0 is Running")
    # A pod created through the API, then a watch from the list's
    # resourceVersion: the ADDED event of the new pod comes.
    pod = client.V1Pod(
        metadata=client.V1ObjectMeta(name="py-0", labels={"made-by": "python"}),
        spec=client.V1PodSpec(
            service_account_name="api",
            containers=[client.V1Container(name="c", image="busybox:1.36")],
        ),
    )
    created = core.create_namespaced_pod("shop", pod)
    check(created.status.phase == "Pending", f"a new pod is Pending: {created.status.phase}")
    seen = []
    stream = watch.Watch()
    for event in stream.stream(
        core.list_namespaced_pod,
        "shop",
        resource_version=listed.metadata.resource_version,
        label_selector="made-by=python",
        timeout_seconds=10,
    ):
        seen.append((event["type"], event["object"].metadata.name))
        if seen[-1] == ("ADDED", "py-0"):
            stream.stop()
    check(seen == [("ADDED", "py-0")], f"watch events: {seen}")
    core.delete_namespaced_pod("py-0", "shop")


def secrets(api):
    core = client.CoreV1Api(api)
    secret = core.create_namespaced_secret(
        "shop",
        client.V1Secret(metadata=client.V1ObjectMeta(name="py-db"), string_data={"password": "one"}),
    )
    check(base64.b64decode(secret.data["password"]) == b"one", "stringData is stored as data")
    check(secret.string_data is None, "stringData is not kept")
    secret.data["password"] = base64.b64encode(b"two").decode()
    updated = core.replace_namespaced_secret("py-db", "shop", secret)
    check(updated.metadata.resource_version != secret.metadata.resource_version, "a new resourceVersion")
    # `secret` still carries the old resourceVersion: a conflict.
    secret.data["password"] = base64.b64encode(b"three").decode()
    status = refused(lambda: core.replace_namespaced_secret("py-db", "shop", secret), 409)
    check(status["reason"] == "Conflict" and status["kind"] == "Status", f"a Conflict Status: {status}")
    current = core.read_namespaced_secret("py-db", "shop")
    check(base64.b64decode(current.data["password"]) == b"two", "the stale write changed nothing")
    status = refused(
        lambda: core.create_namespaced_secret(
            "no-such-namespace", client.V1Secret(metadata=client.V1ObjectMeta(name="x"))
        ),
        404,
    )
    check(status["details"]["name"] == "no-such-namespace", f"the missing namespace is named: {status}")


def pod_certificate_requests(api):
    core = client.CoreV1Api(api)
    certificates = client.CertificatesV1Api(api)
    pod = core.read_namespaced_pod("api-0", "shop")
    account = core.read_namespaced_service_account("api", "shop")

    def request(pod_uid):
        return client.V1PodCertificateRequest(
            metadata=client.V1ObjectMeta(generate_name="api-0-"),
            spec=client.V1PodCertificateRequestSpec(
                signer_name="podseal.dev/workload",
                pod_name="api-0",
                pod_uid=pod_uid,
                service_account_name="api",
                service_account_uid=account.metadata.uid,
                node_name=pod.spec.node_name,
                node_uid=os.environ["STANDIN_NODE_UID"],
                stub_pkcs10_request=base64.b64encode(b"a stub PKCS#10 request").decode(),
            ),
        )

    status = refused(
        lambda: certificates.create_namespaced_pod_certificate_request("shop", request("not-the-pod")),
        422,
    )
    check(status["reason"] == "Invalid", f"a wrong pod uid is Invalid: {status}")
    created = certificates.create_namespaced_pod_certificate_request("shop", request(pod.metadata.uid))
    name = created.metadata.name
    check(name.startswith("api-0-"), f"generateName: {name}")
    check(created.spec.max_expiration_seconds == 86400, "maxExpirationSeconds defaults to a day")
    check(created.status is None or not created.status.conditions, "a new request has no conditions")

    # The signer issues it through the status subresource.
    now = datetime.datetime.now(datetime.timezone.utc).replace(microsecond=0)
    created.status = client.V1PodCertificateRequestStatus(
        certificate_chain="-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n",
        not_before=now,
        not_after=now + datetime.timedelta(hours=24),
        begin_refresh_at=now + datetime.timedelta(hours=12),
        conditions=[
            client.V1Condition(
                type="Issued",
                status="True",
                reason="Issued",
                message="issued by the test signer",
                last_transition_time=now,
            )
        ],
    )
    certificates.replace_namespaced_pod_certificate_request_status(name, "shop", created)
    issued = certificates.read_namespaced_pod_certificate_request_status(name, "shop")
    check([c.type for c in issued.status.conditions] == ["Issued"], "the request is Issued")
    check(issued.status.not_after == now + datetime.timedelta(hours=24), "notAfter as written")
    # The same object through v1beta1.
    beta = client.CertificatesV1beta1Api(api).read_namespaced_pod_certificate_request(name, "shop")
    check(beta.status.certificate_chain == issued.status.certificate_chain, "v1beta1 reads the same object")
    # Once Issued, the status is final.
    issued.status.conditions[0].message = "changed"
    refused(lambda: certificates.replace_namespaced_pod_certificate_request_status(name, "shop", issued), 422)


def discovery(api):
    """The dynamic client finds kinds through legacy discovery (/api,
    /api/v1, /apis, /apis/GROUP/VERSION), as client libraries do."""
    dynamic_client = dynamic.DynamicClient(api)
    deployments = dynamic_client.resources.get(api_version="apps/v1", kind="Deployment")
    check(deployments.namespaced and deployments.name == "deployments", "deployments found")
    requests = dynamic_client.resources.get(api_version="certificates.k8s.io/v1beta1", kind="PodCertificateRequest")
    check(requests.name == "podcertificaterequests", "PodCertificateRequest found in v1beta1")
    secrets = dynamic_client.resources.get(api_version="v1", kind="Secret")
    listed = secrets.get(namespace="shop")
    check(listed.kind == "SecretList", f"a SecretList: {listed.kind}")


def main():
    api = api_client()
    discovery(api)
    pods(api)
    secrets(api)
    pod_certificate_requests(api)
    print("all flows passed")


if __name__ == "__main__":
    main()
