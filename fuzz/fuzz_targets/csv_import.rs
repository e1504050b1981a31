//! The CSV contact importer on any bytes: the head (byte order mark, separator sniffing,
//! headers, preview rows), the suggested mapping, its resolution against the headers, and every
//! data row read in batches exactly as an import job reads its file. Nothing may panic; every
//! row read is either a contact or a refused row with its number; an accepted phone number is
//! E.164 and normalises again to itself.
#![no_main]

use std::io::Cursor;

use libfuzzer_sys::fuzz_target;
use server::imports::{head, read_batches, resolve, suggest, Options};

fuzz_target!(|data: &[u8]| {
    let Ok(h) = head(Cursor::new(data), 20) else {
        return;
    };
    assert!(!h.headers.is_empty());
    assert!(h.data_offset as usize <= data.len());
    let mapping = suggest(&h.headers);
    let Ok(columns) = resolve(&mapping, &h.headers) else {
        return;
    };
    // The default country comes from the first byte, so numbers without a country code are
    // tried against a few regions too.
    let default_country = ["", "ID", "US", "GB", "BR", "IN"][data.first().map_or(0, |b| *b as usize % 6)];
    let options = Options {
        default_country: (!default_country.is_empty()).then(|| default_country.to_string()),
        labels: vec!["imported".into()],
        delimiter: h.delimiter,
    };
    // Every batch fits: at most one row per input byte, seven rows per batch.
    let (tx, mut rx) = tokio::sync::mpsc::channel(data.len() / 7 + 2);
    read_batches(Cursor::new(data), h.data_offset, 2, columns, options.clone(), 7, tx);
    let mut next_row = 2;
    let mut last_offset = h.data_offset as i64;
    while let Ok(batch) = rx.try_recv() {
        let Ok(batch) = batch else {
            // A row that is not CSV ends the job with its reason; nothing after it is read.
            assert!(rx.try_recv().is_err());
            break;
        };
        assert_eq!(batch.rows as usize, batch.contacts.len() + batch.errors.len());
        assert!(batch.end_offset >= last_offset && batch.end_offset as usize <= data.len());
        last_offset = batch.end_offset;
        for e in &batch.errors {
            assert!(e.row >= next_row && e.row < next_row + batch.rows, "row numbers stay in the batch");
            assert!(!e.error.is_empty());
        }
        for c in &batch.contacts {
            assert!(c.phone.starts_with('+') && c.phone[1..] == c.wa_id);
            let again = server::phone::normalize(&c.phone, None).expect("an accepted number parses again");
            assert_eq!(again.as_str(), c.phone);
            assert!(c.labels.iter().any(|l| l == "imported"));
        }
        next_row += batch.rows;
    }
});
