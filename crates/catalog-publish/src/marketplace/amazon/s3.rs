//! The answers of S3, where Amazon's feed documents are uploaded and read, to presigned URLs.

use crate::response::truncate;

/// What an S3 error answer to a presigned URL may be told as: its `Code` and `Message` alone.
/// The rest of the body can quote the URL's query, its signature and credential (a
/// `SignatureDoesNotMatch` carries the canonical request and the string to sign), and the
/// error is stored with the attempt, shown in the trace and logged.
pub(super) fn s3_error(body: &str) -> String {
    let element = |name: &str| {
        let (open, close) = (format!("<{name}>"), format!("</{name}>"));
        let start = body.find(&open)? + open.len();
        let end = start + body[start..].find(&close)?;
        Some(truncate(&body[start..end]).to_owned())
    };
    match (element("Code"), element("Message")) {
        (Some(code), Some(message)) => format!("{code}: {message}"),
        (Some(code), None) => code,
        _ => format!("an answer of {} bytes, not shown (it may quote the presigned URL)", body.len()),
    }
}

#[cfg(test)]
mod tests {
    use super::s3_error;

    /// S3's refusal of a presigned URL quotes the request it signed; only its code and
    /// message are kept.
    #[test]
    fn an_s3_error_is_told_without_the_url_it_quotes() {
        let body = r#"<?xml version="1.0" encoding="UTF-8"?>
<Error><Code>SignatureDoesNotMatch</Code><Message>The request signature we calculated does not match the signature you provided.</Message><AWSAccessKeyId>AKIAEXAMPLE</AWSAccessKeyId><StringToSign>AWS4-HMAC-SHA256</StringToSign><SignatureProvided>5f1c0ffee</SignatureProvided><CanonicalRequest>PUT /doc X-Amz-Credential=AKIAEXAMPLE&amp;X-Amz-Signature=5f1c0ffee</CanonicalRequest></Error>"#;
        let told = s3_error(body);
        assert_eq!(
            told,
            "SignatureDoesNotMatch: The request signature we calculated does not match the signature you provided."
        );
        assert!(!s3_error("<html>X-Amz-Signature=5f1c0ffee</html>").contains("5f1c"));
    }
}
