//! Our audit checkpoints read by an independent implementation of C2SP
//! signed-note: the `signed_note` crate (Cloudflare's port of Go's
//! `golang.org/x/mod/sumdb/note`), given nothing but the note text and our
//! verifier-key text. If our key id, key name, signature line or body
//! framing were off by one byte, it would refuse them.

use podseal_core::audit::merkle::leaf_hash;
use podseal_core::audit::{AuditKey, Checkpoint, LogOrigin, verifier_key_text};
use signed_note::{Note, NoteError, StandardVerifier, VerifierList};

fn origin() -> LogOrigin {
    LogOrigin::new("podseal.example/audit").unwrap()
}

fn their_verifiers(vkey: &str) -> VerifierList {
    VerifierList::new(vec![Box::new(StandardVerifier::new(vkey).unwrap())])
}

#[test]
fn signed_note_verifies_our_checkpoints_with_our_verifier_key() {
    for (seed, size) in [(1u8, 1u64), (2, 2), (3, 1_000_003), (4, u64::MAX >> 1)] {
        let key = AuditKey::from_seed(&[seed; 32]);
        let checkpoint = key.checkpoint(&origin(), size, &leaf_hash(&size.to_be_bytes()));
        let vkey = verifier_key_text(&origin(), &key.public_key());
        let note = Note::from_bytes(checkpoint.note().as_bytes()).unwrap();
        let (verified, unverified) = note.verify(&their_verifiers(&vkey)).unwrap();
        assert_eq!(verified.len(), 1);
        assert!(unverified.is_empty());
        assert_eq!(verified[0].name(), "podseal.example/audit");
        // They read the same body we signed.
        let body = format!(
            "podseal.example/audit\n{size}\n{}\n",
            base64_root(&checkpoint)
        );
        assert_eq!(note.text(), body.as_bytes());
        // Another key's verifier (same name) does not know our signature.
        let other = verifier_key_text(&origin(), &AuditKey::from_seed(&[99; 32]).public_key());
        assert!(matches!(
            note.verify(&their_verifiers(&other)),
            Err(NoteError::UnverifiedNote)
        ));
    }
}

fn base64_root(checkpoint: &Checkpoint) -> String {
    checkpoint.note().lines().nth(2).unwrap().to_owned()
}

/// Any one byte of the note changed (body, blank line, signature line):
/// our verifier refuses it, and so does theirs.
#[test]
fn both_verifiers_refuse_a_note_with_any_edited_byte() {
    let key = AuditKey::from_seed(&[7; 32]);
    let checkpoint = key.checkpoint(&origin(), 42, &leaf_hash(b"x"));
    let vkey = verifier_key_text(&origin(), &key.public_key());
    let theirs = their_verifiers(&vkey);
    let text = checkpoint.note();
    let mut checked = 0;
    for i in 0..text.len() {
        for delta in [0x01u8, 0x04, 0x40] {
            let mut bytes = text.as_bytes().to_vec();
            bytes[i] ^= delta;
            let Ok(edited) = String::from_utf8(bytes.clone()) else {
                continue;
            };
            let ours = Checkpoint::parse(&edited).is_ok_and(|c| c.is_signed_by(&key.public_key()));
            assert!(!ours, "our verifier accepted byte {i} ^ {delta:#x}");
            let their = Note::from_bytes(&bytes).and_then(|n| n.verify(&theirs).map(|_| ()));
            assert!(their.is_err(), "signed_note accepted byte {i} ^ {delta:#x}");
            checked += 1;
        }
    }
    assert!(
        checked > text.len(),
        "most edits stay UTF-8 and were checked"
    );
}
