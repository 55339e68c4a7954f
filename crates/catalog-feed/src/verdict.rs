//! What a feed's answer means by the contract's error table (`classify_response`, pure): its
//! status and `Retry-After` alone decide.

use std::time::Duration;

/// What to do with an answer, by the contract's error table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// 200: parse the page (a body that is not one, or is longer than a page may be, is
    /// retried like a 5xx).
    Page,
    /// 429: ask for the same page again after this long.
    Throttled(Duration),
    /// 5xx (and 408): retry the same page with backoff.
    Retry,
    /// 410: the cursor expired; start the window again.
    CursorExpired,
    /// Any other answer (400, 401, 403, 404, …): the run fails at once, for an operator.
    Refused,
}

/// The wait a 429 asks for when it gives no usable `Retry-After`.
pub const DEFAULT_RETRY_AFTER: Duration = Duration::from_secs(1);

/// The longest `Retry-After` a run waits out itself. A longer one ends the run (`HeldOff`),
/// which frees its slot for other feeds; the feed is held at least that long and resumes at
/// its last committed page.
pub const MAX_WAIT_IN_RUN: Duration = Duration::from_secs(60);

/// The longest hold a `Retry-After` gets: a broken header must not park a feed for years.
pub const MAX_RETRY_AFTER: Duration = Duration::from_secs(24 * 3_600);

/// Classifies a feed's answer: its status and `Retry-After` (seconds) alone decide.
pub fn classify_response(status: u16, retry_after: Option<&str>) -> Verdict {
    match status {
        200 => Verdict::Page,
        429 => Verdict::Throttled(
            retry_after
                .and_then(|value| value.trim().parse::<u64>().ok())
                .map_or(DEFAULT_RETRY_AFTER, Duration::from_secs),
        ),
        410 => Verdict::CursorExpired,
        408 | 500..=599 => Verdict::Retry,
        _ => Verdict::Refused,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers_are_classified_by_the_contract_table() {
        let table: String = [
            (200, None),
            (429, Some("7")),
            (429, Some("soon")),
            (429, None),
            (410, None),
            (500, None),
            (503, None),
            (408, None),
            (400, None),
            (401, None),
            (403, None),
            (404, None),
            (302, None),
        ]
        .iter()
        .map(|(status, retry_after)| {
            format!("{status} {retry_after:?} -> {:?}\n", classify_response(*status, *retry_after))
        })
        .collect();
        insta::assert_snapshot!(table, @r#"
        200 None -> Page
        429 Some("7") -> Throttled(7s)
        429 Some("soon") -> Throttled(1s)
        429 None -> Throttled(1s)
        410 None -> CursorExpired
        500 None -> Retry
        503 None -> Retry
        408 None -> Retry
        400 None -> Refused
        401 None -> Refused
        403 None -> Refused
        404 None -> Refused
        302 None -> Refused
        "#);
    }
}
