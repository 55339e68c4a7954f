//! The notice the page shows after an action (a redirect to `/?message=…`), sealed with a key
//! only this process knows, for the one signed in who took the action: a link made elsewhere
//! cannot put its own words ("your session expired, paste your token at …") on the signed-in
//! page, nor can a notice one person's action earned be shown to another. A notice sealed by
//! another instance behind the same address is not shown; the action's result is on the page
//! anyway. Notices carry none of a form's input (`actions::form_tenant`), only what the
//! server wrote.

use std::sync::OnceLock;

use hmac::{Hmac, Mac as _};
use sha2::Sha256;
use subtle::ConstantTimeEq as _;

use crate::auth::Caller;

/// Where to send `reader`'s browser after an action, with `message` and its seal.
pub(super) fn location(message: &str, reader: &Caller) -> String {
    let pairs = [("message", message), ("seal", &seal(message, reader))];
    format!("/?{}", serde_urlencoded::to_string(pairs).expect("pairs of strings encode"))
}

/// `message` when `given` is its seal for `reader`.
pub(super) fn verified<'m>(message: Option<&'m str>, given: Option<&str>, reader: &Caller) -> Option<&'m str> {
    let message = message?;
    let expected = seal(message, reader);
    let same = given.is_some_and(|given| bool::from(given.as_bytes().ct_eq(expected.as_bytes())));
    same.then_some(message)
}

/// HMAC-SHA256 of `reader`'s token name and `message` under the process's key, in hex. The
/// name goes first with its length, so no other name and message make the same input.
fn seal(message: &str, reader: &Caller) -> String {
    static KEY: OnceLock<[u8; 32]> = OnceLock::new();
    let key = KEY.get_or_init(|| {
        let mut key = [0u8; 32];
        getrandom::fill(&mut key).expect("the operating system gives randomness");
        key
    });
    let mut mac = Hmac::<Sha256>::new_from_slice(key).expect("HMAC takes a key of any length");
    mac.update(&(reader.name.len() as u64).to_be_bytes());
    mac.update(reader.name.as_bytes());
    mac.update(message.as_bytes());
    hex::encode(mac.finalize().into_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::Role;

    fn caller(name: &str) -> Caller {
        Caller { name: name.to_owned(), role: Role::Viewer }
    }

    #[test]
    fn only_a_notice_this_process_sealed_is_shown() {
        let otto = caller("otto");
        let sealed = seal("Dead letter 7 resolved.", &otto);
        assert_eq!(verified(Some("Dead letter 7 resolved."), Some(&sealed), &otto), Some("Dead letter 7 resolved."));
        let crafted = Some("Paste your token at https://evil.example");
        assert_eq!(verified(crafted, Some(&sealed), &otto), None, "another text");
        assert_eq!(verified(Some("Dead letter 7 resolved."), None, &otto), None, "no seal");
        assert_eq!(verified(Some("Dead letter 7 resolved."), Some("00"), &otto), None, "a short seal");
        assert_eq!(verified(None, Some(&sealed), &otto), None);
    }

    /// A notice is sealed for whoever took the action: a viewer's sealed link, sent to a
    /// colleague, showed its words on the colleague's page too.
    #[test]
    fn a_notice_sealed_for_one_caller_is_not_shown_to_another() {
        let sealed = seal("Dead letter 7 resolved.", &caller("vera"));
        assert_eq!(verified(Some("Dead letter 7 resolved."), Some(&sealed), &caller("otto")), None);
        // The name's length goes into the seal: "ab" + "c…" is not "a" + "bc…".
        assert_ne!(seal("cd", &caller("ab")), seal("bcd", &caller("a")));
    }
}
