//! Rows encoded in PostgreSQL's binary `COPY` format, for bulk inserts: the server copies
//! them into the table without parsing text or unpacking arrays.
//!
//! Format (PostgreSQL docs, "COPY — Binary Format"): a signature and two zero words, then
//! per row a 16-bit field count and per field a 32-bit length (-1 for NULL) and the value
//! in the type's binary send format, then a -1 trailer.

use chrono::{DateTime, Utc};
use uuid::Uuid;

const SIGNATURE: &[u8] = b"PGCOPY\n\xff\r\n\0";

/// Microseconds from the Unix epoch to PostgreSQL's epoch, 2000-01-01 00:00:00 UTC.
const POSTGRES_EPOCH_MICROS: i64 = 946_684_800_000_000;

/// A buffer of rows for one `COPY … FROM STDIN (FORMAT binary)`.
#[derive(Debug)]
pub(crate) struct BinaryRows {
    buffer: Vec<u8>,
    columns: u16,
}

impl BinaryRows {
    /// A buffer for rows of `columns` fields, sized for `rows` rows of about `row_bytes`.
    pub(crate) fn new(columns: u16, rows: usize, row_bytes: usize) -> Self {
        let mut buffer = Vec::with_capacity(SIGNATURE.len() + 10 + rows * row_bytes);
        buffer.extend_from_slice(SIGNATURE);
        buffer.extend_from_slice(&0_i32.to_be_bytes()); // flags: no OIDs
        buffer.extend_from_slice(&0_i32.to_be_bytes()); // header extension length
        Self { buffer, columns }
    }

    /// Starts a row; exactly `columns` fields must follow.
    pub(crate) fn row(&mut self) -> &mut Self {
        self.buffer.extend_from_slice(&(self.columns as i16).to_be_bytes());
        self
    }

    fn field(&mut self, value: Option<&[u8]>) -> &mut Self {
        match value {
            None => self.buffer.extend_from_slice(&(-1_i32).to_be_bytes()),
            Some(bytes) => {
                // A field is at most 1 GiB in PostgreSQL; our values are far smaller.
                self.buffer.extend_from_slice(&(bytes.len() as i32).to_be_bytes());
                self.buffer.extend_from_slice(bytes);
            }
        }
        self
    }

    pub(crate) fn uuid(&mut self, value: Option<Uuid>) -> &mut Self {
        self.field(value.as_ref().map(|uuid| uuid.as_bytes().as_slice()))
    }

    pub(crate) fn text(&mut self, value: Option<&str>) -> &mut Self {
        self.field(value.map(str::as_bytes))
    }

    pub(crate) fn bytea(&mut self, value: Option<&[u8]>) -> &mut Self {
        self.field(value)
    }

    pub(crate) fn int8(&mut self, value: Option<i64>) -> &mut Self {
        self.field(value.map(i64::to_be_bytes).as_ref().map(<[u8; 8]>::as_slice))
    }

    pub(crate) fn int4(&mut self, value: i32) -> &mut Self {
        self.field(Some(&value.to_be_bytes()))
    }

    pub(crate) fn bool(&mut self, value: bool) -> &mut Self {
        self.field(Some(&[u8::from(value)]))
    }

    pub(crate) fn timestamptz(&mut self, value: Option<DateTime<Utc>>) -> &mut Self {
        self.int8(value.map(|time| time.timestamp_micros() - POSTGRES_EPOCH_MICROS))
    }

    /// The encoded rows with the trailer, ready to send.
    pub(crate) fn finish(mut self) -> Vec<u8> {
        self.buffer.extend_from_slice(&(-1_i16).to_be_bytes());
        self.buffer
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_fields_and_trailer_follow_the_format() {
        let mut rows = BinaryRows::new(3, 1, 32);
        rows.row().int4(7).text(None).bool(true);
        let bytes = rows.finish();
        let mut expected = b"PGCOPY\n\xff\r\n\0".to_vec();
        expected.extend_from_slice(&[0, 0, 0, 0, 0, 0, 0, 0]);
        expected.extend_from_slice(&[0, 3]);
        expected.extend_from_slice(&[0, 0, 0, 4, 0, 0, 0, 7]);
        expected.extend_from_slice(&[0xff, 0xff, 0xff, 0xff]);
        expected.extend_from_slice(&[0, 0, 0, 1, 1]);
        expected.extend_from_slice(&[0xff, 0xff]);
        assert_eq!(bytes, expected);
    }

    #[test]
    fn timestamps_count_microseconds_from_2000() {
        let mut rows = BinaryRows::new(1, 1, 16);
        let time: DateTime<Utc> = "2000-01-01T00:00:01.000002Z".parse().expect("time");
        rows.row().timestamptz(Some(time));
        let bytes = rows.finish();
        let field = &bytes[19 + 2 + 4..19 + 2 + 4 + 8];
        assert_eq!(i64::from_be_bytes(field.try_into().expect("8 bytes")), 1_000_002);
    }

    /// What PostgreSQL reads back is what was encoded, NULLs and edge values included.
    #[tokio::test]
    async fn postgres_reads_back_every_value_as_encoded() {
        use sqlx::{Connection, Row};
        let database = catalog_testkit::TestDatabase::create().await;
        let mut connection = sqlx::PgConnection::connect(&database.url).await.expect("connect");
        sqlx::query("CREATE TABLE t (n int4, u uuid, s text, b bytea, i int8, f bool, at timestamptz)")
            .execute(&mut connection)
            .await
            .expect("create");
        let before_2000: DateTime<Utc> = "1999-12-31T23:59:59.999999Z".parse().expect("time");
        let later: DateTime<Utc> = "2026-11-22T04:05:06.123456Z".parse().expect("time");
        let id = Uuid::from_u128(0x0123_4567_89ab_cdef_0123_4567_89ab_cdef);
        let mut rows = BinaryRows::new(7, 2, 64);
        rows.row().int4(1).uuid(Some(id)).text(Some("ünï\tcode\n")).bytea(Some(&[0, 255, 10])).int8(Some(i64::MIN));
        rows.bool(true).timestamptz(Some(before_2000));
        rows.row().int4(-2).uuid(None).text(Some("")).bytea(None).int8(None).bool(false).timestamptz(Some(later));
        let mut sink = connection.copy_in_raw("COPY t FROM STDIN (FORMAT binary)").await.expect("copy");
        sink.send(rows.finish()).await.expect("send");
        assert_eq!(sink.finish().await.expect("finish"), 2);

        let read = sqlx::query("SELECT n, u, s, b, i, f, at FROM t ORDER BY n DESC")
            .fetch_all(&mut connection)
            .await
            .expect("select");
        assert_eq!(read[0].get::<i32, _>(0), 1);
        assert_eq!(read[0].get::<Option<Uuid>, _>(1), Some(id));
        assert_eq!(read[0].get::<Option<String>, _>(2).as_deref(), Some("ünï\tcode\n"));
        assert_eq!(read[0].get::<Option<Vec<u8>>, _>(3), Some(vec![0, 255, 10]));
        assert_eq!(read[0].get::<Option<i64>, _>(4), Some(i64::MIN));
        assert!(read[0].get::<bool, _>(5));
        assert_eq!(read[0].get::<DateTime<Utc>, _>(6), before_2000);
        assert_eq!(read[1].get::<i32, _>(0), -2);
        assert_eq!(read[1].get::<Option<Uuid>, _>(1), None);
        assert_eq!(read[1].get::<Option<String>, _>(2).as_deref(), Some(""));
        assert_eq!(read[1].get::<Option<Vec<u8>>, _>(3), None);
        assert_eq!(read[1].get::<Option<i64>, _>(4), None);
        assert!(!read[1].get::<bool, _>(5));
        assert_eq!(read[1].get::<DateTime<Utc>, _>(6), later);
        connection.close().await.expect("close");
    }
}
