//! The notice the page shows after an action (a redirect to `/?message=…`), sealed with a key
//! only this process knows: a link made elsewhere cannot put its own words ("your session
//! expired, paste your token at …") on the signed-in page. A notice sealed by another
//! instance behind the same address is not shown; the action's result is on the page anyway.

use std::sync::OnceLock;

use hmac::{Hmac, Mac as _};
use sha2::Sha256;
use subtle::ConstantTimeEq as _;

/// Where to send the browser after an action, with `message` and its seal.
pub(super) fn location(message: &str) -> String {
    let pairs = [("message", message), ("seal", &seal(message))];
    format!("/?{}", serde_urlencoded::to_string(pairs).expect("pairs of strings encode"))
}

/// `message` when `given` is its seal.
pub(super) fn verified<'m>(message: Option<&'m str>, given: Option<&str>) -> Option<&'m str> {
    let message = message?;
    let expected = seal(message);
    let same = given.is_some_and(|given| bool::from(given.as_bytes().ct_eq(expected.as_bytes())));
    same.then_some(message)
}

/// HMAC-SHA256 of `message` under the process's key, in hex.
fn seal(message: &str) -> String {
    static KEY: OnceLock<[u8; 32]> = OnceLock::new();
    let key = KEY.get_or_init(|| {
        let mut key = [0u8; 32];
        getrandom::fill(&mut key).expect("the operating system gives randomness");
        key
    });
    let mut mac = Hmac::<Sha256>::new_from_slice(key).expect("HMAC takes a key of any length");
    mac.update(message.as_bytes());
    hex::encode(mac.finalize().into_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_notice_this_process_sealed_is_shown() {
        let sealed = seal("Dead letter 7 resolved.");
        assert_eq!(verified(Some("Dead letter 7 resolved."), Some(&sealed)), Some("Dead letter 7 resolved."));
        assert_eq!(verified(Some("Paste your token at https://evil.example"), Some(&sealed)), None, "another text");
        assert_eq!(verified(Some("Dead letter 7 resolved."), None), None, "no seal");
        assert_eq!(verified(Some("Dead letter 7 resolved."), Some("00")), None, "a short seal");
        assert_eq!(verified(None, Some(&sealed)), None);
    }
}
