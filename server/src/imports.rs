//! CSV contact imports as server-side jobs. The upload is written to the data folder; a worker
//! reads it with a streaming CSV reader on a blocking thread, validates each row, and hands
//! batches to the database, which commits each batch with the job's counters and byte offset.
//! Memory stays flat whatever the file's size, and a restarted server resumes after the last
//! committed batch (or marks the job failed when its file is gone).

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::sync::LazyLock;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use tokio::sync::Notify;

use app::server::db::contacts::{
    normalize_label, ImportBatch, ImportContact, ImportError, ImportRow,
};
use app::server::new_id;

use crate::AppState;

/// Rows per transaction.
pub const BATCH_ROWS: usize = 1000;
/// How long a worker holds a job between batches before another may take it over.
const LEASE_MS: i64 = 60_000;
/// Limits on what one row may set.
pub const MAX_NAME: usize = 256;
pub const MAX_ATTRIBUTE_VALUE: usize = 1024;
pub const MAX_ATTRIBUTES: usize = 100;
pub const MAX_LABEL: usize = 64;
pub const MAX_LABELS: usize = 50;

static WAKE: LazyLock<Notify> = LazyLock::new(Notify::new);

/// Wakes the import workers (after a new job is stored).
pub fn wake() {
    WAKE.notify_waiters();
}

/// The folder holding uploaded files while their imports run.
pub fn folder(data_dir: &Path) -> PathBuf {
    data_dir.join("imports")
}

/// Which column feeds which field: `phone` (required), `name`, `labels`, and `attr:<key>`.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(transparent)]
pub struct Mapping(pub BTreeMap<String, String>);

/// Options of an import.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Options {
    /// ISO 3166 alpha-2 country for numbers written without a country code.
    #[serde(default)]
    pub default_country: Option<String>,
    /// Labels added to every imported contact.
    #[serde(default)]
    pub labels: Vec<String>,
    /// The field separator, sniffed from the header line.
    #[serde(default = "comma")]
    pub delimiter: u8,
}

fn comma() -> u8 {
    b','
}

/// Column indexes resolved from a mapping and the file's headers.
#[derive(Debug, Clone)]
pub struct Columns {
    phone: usize,
    name: Option<usize>,
    labels: Option<usize>,
    attributes: Vec<(String, usize)>,
}

/// Validates a mapping against the headers; the error names the bad entry.
pub fn resolve(mapping: &Mapping, headers: &[String]) -> Result<Columns, (String, String)> {
    let find = |target: &str, header: &str| {
        headers.iter().position(|h| h == header).ok_or_else(|| {
            (
                format!("mapping.{target}"),
                format!("the file has no column `{header}`"),
            )
        })
    };
    let mut columns = Columns {
        phone: usize::MAX,
        name: None,
        labels: None,
        attributes: Vec::new(),
    };
    for (target, header) in &mapping.0 {
        if header.is_empty() {
            continue;
        }
        let i = find(target, header)?;
        match target.as_str() {
            "phone" => columns.phone = i,
            "name" => columns.name = Some(i),
            "labels" => columns.labels = Some(i),
            t => match t.strip_prefix("attr:") {
                Some(key) if valid_attribute_key(key) => {
                    columns.attributes.push((key.to_string(), i))
                }
                _ => {
                    return Err((
                        format!("mapping.{t}"),
                        "map columns to phone, name, labels or attr:<key> (key: letters, digits, _ . -, at most 64)".into(),
                    ))
                }
            },
        }
    }
    if columns.phone == usize::MAX {
        return Err((
            "mapping.phone".into(),
            "choose the column that holds the phone number".into(),
        ));
    }
    if columns.attributes.len() > MAX_ATTRIBUTES {
        return Err((
            "mapping".into(),
            format!("at most {MAX_ATTRIBUTES} attribute columns"),
        ));
    }
    Ok(columns)
}

/// Attribute keys: 1–64 of letters, digits, `_`, `.`, `-`.
pub fn valid_attribute_key(key: &str) -> bool {
    !key.is_empty()
        && key.len() <= 64
        && key
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'))
}

/// An attribute key made from a column header: `Customer City` → `customer_city`.
fn key_from_header(header: &str) -> String {
    let mut key = String::new();
    for c in header.trim().chars() {
        if c.is_alphanumeric() && c.is_ascii() {
            key.push(c.to_ascii_lowercase());
        } else if !key.ends_with('_') && !key.is_empty() {
            key.push('_');
        }
    }
    let key = key.trim_end_matches('_').to_string();
    key.chars().take(64).collect()
}

/// A mapping guessed from the headers: known names for phone, name and labels, `attr:x`
/// columns as they are (an export's round trip), every other column as an attribute.
pub fn suggest(headers: &[String]) -> Mapping {
    let squash = |h: &str| -> String {
        h.chars()
            .filter(|c| c.is_alphanumeric())
            .collect::<String>()
            .to_lowercase()
    };
    const PHONE: &[&str] = &[
        "phone",
        "phonenumber",
        "mobile",
        "mobilephone",
        "mobilenumber",
        "whatsapp",
        "whatsappnumber",
        "waid",
        "msisdn",
        "number",
        "tel",
        "telephone",
        "cell",
        "cellphone",
        "handphone",
        "hp",
        "nohp",
        "nomorhp",
        "nomortelepon",
        "nomorwa",
        "telefono",
        "telefone",
    ];
    const NAME: &[&str] = &[
        "name",
        "fullname",
        "contactname",
        "displayname",
        "nama",
        "namalengkap",
        "customer",
        "customername",
    ];
    const LABELS: &[&str] = &[
        "labels", "label", "tags", "tag", "groups", "group", "segments", "segment",
    ];
    const SKIP: &[&str] = &[
        "id",
        "bsuid",
        "username",
        "profilename",
        "createdat",
        "updatedat",
    ];
    let mut m = BTreeMap::new();
    let pick = |names: &[&str]| {
        names
            .iter()
            .find_map(|n| headers.iter().find(|h| squash(h) == *n))
    };
    let phone = pick(PHONE);
    let name = pick(NAME);
    let labels = pick(LABELS);
    for (target, h) in [("phone", phone), ("name", name), ("labels", labels)] {
        if let Some(h) = h {
            m.insert(target.to_string(), h.clone());
        }
    }
    for h in headers {
        if Some(h) == phone || Some(h) == name || Some(h) == labels {
            continue;
        }
        let s = squash(h);
        if SKIP.contains(&s.as_str()) || (s == "waid" && phone.is_some()) {
            continue;
        }
        let key = match h.strip_prefix("attr:") {
            Some(k) => k.to_string(),
            None => key_from_header(h),
        };
        if valid_attribute_key(&key) && !m.contains_key(&format!("attr:{key}")) {
            m.insert(format!("attr:{key}"), h.clone());
        }
    }
    Mapping(m)
}

/// The separator of the header line: the most frequent of `,` `;` tab `|` (comma on a tie).
pub fn sniff_delimiter(first_line: &[u8]) -> u8 {
    let mut best = (b',', 0usize);
    for d in [b',', b';', b'\t', b'|'] {
        let n = first_line.iter().filter(|&&c| c == d).count();
        if n > best.1 {
            best = (d, n);
        }
    }
    best.0
}

/// Where the text starts: after a UTF-8 byte order mark, when there is one.
fn bom_len(start: &[u8]) -> u64 {
    if start.starts_with(&[0xEF, 0xBB, 0xBF]) {
        3
    } else {
        0
    }
}

fn text(field: &[u8]) -> String {
    String::from_utf8_lossy(field).trim().to_string()
}

/// The file's head: separator, headers, the byte offset of the first data row, and up to
/// `rows` data rows.
pub struct Head {
    pub delimiter: u8,
    pub headers: Vec<String>,
    pub data_offset: u64,
    pub rows: Vec<Vec<String>>,
}

/// Reads the header and the first rows of a CSV.
pub fn head(mut input: impl Read + Seek, rows: usize) -> Result<Head, String> {
    let mut start = Vec::with_capacity(64 * 1024);
    (&mut input)
        .take(64 * 1024)
        .read_to_end(&mut start)
        .map_err(|e| e.to_string())?;
    let bom = bom_len(&start);
    let first_line = start[bom as usize..]
        .split(|&c| c == b'\n')
        .next()
        .unwrap_or_default();
    let delimiter = sniff_delimiter(first_line);
    input
        .seek(SeekFrom::Start(bom))
        .map_err(|e| e.to_string())?;
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(false)
        .flexible(true)
        .delimiter(delimiter)
        .from_reader(BufReader::new(input));
    let mut record = csv::ByteRecord::new();
    let found = reader
        .read_byte_record(&mut record)
        .map_err(|e| format!("the file is not readable as CSV: {e}"))?;
    if !found {
        return Err("the file is empty".into());
    }
    let headers: Vec<String> = record.iter().map(text).collect();
    if headers.iter().all(String::is_empty) {
        return Err("the first line must name the columns".into());
    }
    let data_offset = bom + reader.position().byte();
    let mut out = Vec::new();
    while out.len() < rows {
        match reader.read_byte_record(&mut record) {
            Ok(true) => out.push(record.iter().map(text).collect()),
            Ok(false) => break,
            Err(e) => return Err(format!("the file is not readable as CSV: {e}")),
        }
    }
    Ok(Head {
        delimiter,
        headers,
        data_offset,
        rows: out,
    })
}

/// Splits a labels cell on `,` `;` `|`.
fn split_labels(cell: &str) -> impl Iterator<Item = String> + '_ {
    cell.split([',', ';', '|'])
        .map(normalize_label)
        .filter(|l| !l.is_empty())
}

/// Strips the quote a spreadsheet-safe export puts before `=`, `+`, `-`, `@`.
fn unguard(s: String) -> String {
    match s.strip_prefix('\'') {
        Some(rest) if rest.starts_with(['=', '+', '-', '@']) => rest.to_string(),
        _ => s,
    }
}

/// Validates one record into a contact, or says why not.
pub fn row(
    record: &csv::ByteRecord,
    columns: &Columns,
    options: &Options,
) -> Result<ImportContact, String> {
    let cell = |i: usize| record.get(i).map(text).unwrap_or_default();
    let raw_phone = cell(columns.phone);
    if raw_phone.is_empty() {
        return Err("the phone number is empty".into());
    }
    let phone = crate::phone::normalize(&raw_phone, options.default_country.as_deref())?;
    let name = columns
        .name
        .map(|i| unguard(cell(i)))
        .filter(|n| !n.is_empty());
    if name.as_ref().is_some_and(|n| n.chars().count() > MAX_NAME) {
        return Err(format!("the name is longer than {MAX_NAME} characters"));
    }
    let mut attributes = Map::new();
    for (key, i) in &columns.attributes {
        let v = unguard(cell(*i));
        if v.chars().count() > MAX_ATTRIBUTE_VALUE {
            return Err(format!(
                "`{key}` is longer than {MAX_ATTRIBUTE_VALUE} characters"
            ));
        }
        if !v.is_empty() {
            attributes.insert(key.clone(), Value::String(v));
        }
    }
    let mut labels: Vec<String> = options.labels.clone();
    if let Some(i) = columns.labels {
        for l in split_labels(&cell(i)) {
            if l.chars().count() > MAX_LABEL {
                return Err(format!(
                    "the label `{l}` is longer than {MAX_LABEL} characters"
                ));
            }
            if !labels.contains(&l) {
                labels.push(l);
            }
        }
    }
    if labels.len() > MAX_LABELS {
        return Err(format!("more than {MAX_LABELS} labels"));
    }
    Ok(ImportContact {
        wa_id: phone.digits().to_string(),
        phone: phone.as_str().to_string(),
        name,
        attributes,
        labels,
    })
}

/// Reads `file` from `offset` and sends batches of `batch_rows` rows; `first_row` is the
/// number of the row at `offset` (the header is row 1). Runs on a blocking thread.
pub fn read_batches(
    file: impl Read + Seek,
    offset: u64,
    first_row: i64,
    columns: Columns,
    options: Options,
    batch_rows: usize,
    out: tokio::sync::mpsc::Sender<Result<ImportBatch, String>>,
) {
    let mut file = file;
    if let Err(e) = file.seek(SeekFrom::Start(offset)) {
        let _ = out.blocking_send(Err(e.to_string()));
        return;
    }
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(false)
        .flexible(true)
        .delimiter(options.delimiter)
        .buffer_capacity(64 * 1024)
        .from_reader(file);
    let mut record = csv::ByteRecord::new();
    let mut batch = ImportBatch::default();
    let mut number = first_row;
    loop {
        match reader.read_byte_record(&mut record) {
            Ok(true) => {
                batch.rows += 1;
                match row(&record, &columns, &options) {
                    Ok(c) => batch.contacts.push(c),
                    Err(error) => batch.errors.push(ImportError {
                        row: number,
                        error,
                        fields: record.iter().map(text).collect(),
                    }),
                }
                number += 1;
                if batch.rows as usize >= batch_rows {
                    batch.end_offset = (offset + reader.position().byte()) as i64;
                    if out.blocking_send(Ok(std::mem::take(&mut batch))).is_err() {
                        return;
                    }
                }
            }
            Ok(false) => break,
            Err(e) => {
                let _ = out.blocking_send(Err(format!("row {number} is not readable as CSV: {e}")));
                return;
            }
        }
    }
    batch.end_offset = (offset + reader.position().byte()) as i64;
    if batch.rows > 0 {
        let _ = out.blocking_send(Ok(batch));
    }
}

/// Counts the lines of a file quickly (an estimate of its rows for the progress bar).
pub fn count_lines(path: &Path) -> std::io::Result<i64> {
    let mut reader = BufReader::with_capacity(256 * 1024, std::fs::File::open(path)?);
    let mut lines = 0i64;
    let mut last = b'\n';
    loop {
        let buf = reader.fill_buf()?;
        if buf.is_empty() {
            break;
        }
        lines += buf.iter().filter(|&&c| c == b'\n').count() as i64;
        last = buf[buf.len() - 1];
        let n = buf.len();
        reader.consume(n);
    }
    Ok(lines + i64::from(last != b'\n'))
}

/// Starts the import worker: it takes queued jobs (and jobs whose server stopped) one at a time.
pub fn start(state: AppState, data_dir: PathBuf) {
    tokio::spawn(async move {
        let worker = format!("import-{}", new_id());
        loop {
            match state.db.claim_import(&worker, LEASE_MS).await {
                Ok(Some(job)) => {
                    run(&state, &data_dir, &worker, job).await;
                    continue;
                }
                Ok(None) => {}
                Err(e) => tracing::warn!(error = %e, "claiming an import failed"),
            }
            tokio::select! {
                _ = WAKE.notified() => {}
                _ = tokio::time::sleep(Duration::from_secs(2)) => {}
            }
        }
    });
}

async fn fail(state: &AppState, id: &str, reason: &str) {
    tracing::warn!(import = %id, reason = %reason, "import failed");
    if let Err(e) = state.db.finish_import(id, "failed", Some(reason)).await {
        tracing::warn!(error = %e, "recording a failed import");
    }
}

async fn run(state: &AppState, data_dir: &Path, worker: &str, job: ImportRow) {
    let path = folder(data_dir).join(&job.storage_key);
    let mapping: Mapping = serde_json::from_str(&job.mapping).unwrap_or_default();
    let options: Options = serde_json::from_str(&job.options).unwrap_or_default();
    let headers: Vec<String> = serde_json::from_str(&job.headers).unwrap_or_default();
    let columns = match resolve(&mapping, &headers) {
        Ok(c) => c,
        Err((_, m)) => return fail(state, &job.id, &m).await,
    };
    let Ok(file) = std::fs::File::open(&path) else {
        return fail(state, &job.id, "the uploaded file is gone (the server restarted on another machine or lost its data folder): upload it again").await;
    };
    let (tx, mut rx) = tokio::sync::mpsc::channel(2);
    let offset = job.byte_offset as u64;
    let first_row = job.processed + 2;
    tokio::task::spawn_blocking(move || {
        read_batches(file, offset, first_row, columns, options, BATCH_ROWS, tx)
    });
    while let Some(batch) = rx.recv().await {
        let batch = match batch {
            Ok(b) => b,
            Err(reason) => return fail(state, &job.id, &reason).await,
        };
        let mut attempt = 0;
        loop {
            match state
                .db
                .apply_import_batch(&job, worker, LEASE_MS, &batch)
                .await
            {
                Ok(_) => break,
                Err(app::server::db::DbError::NotFound(_)) => {
                    tracing::warn!(import = %job.id, "another worker took this import over");
                    return;
                }
                Err(e) if attempt < 5 => {
                    attempt += 1;
                    tracing::warn!(import = %job.id, error = %e, "an import batch failed; retrying");
                    tokio::time::sleep(Duration::from_millis(200 * attempt)).await;
                }
                Err(e) => {
                    // The job stays leased; once the lease ends a worker resumes it here.
                    tracing::error!(import = %job.id, error = %e, "an import batch keeps failing; leaving it to resume later");
                    return;
                }
            }
        }
    }
    if let Err(e) = state.db.finish_import(&job.id, "done", None).await {
        tracing::warn!(error = %e, "recording a finished import");
        return;
    }
    let _ = std::fs::remove_file(&path);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(h: &[&str]) -> Vec<String> {
        h.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn mappings_are_suggested_from_common_headers() {
        let m = suggest(&headers(&[
            "Nama",
            "No HP",
            "Tags",
            "Kota",
            "attr:tier",
            "id",
        ]));
        let want: BTreeMap<String, String> = [
            ("name", "Nama"),
            ("phone", "No HP"),
            ("labels", "Tags"),
            ("attr:kota", "Kota"),
            ("attr:tier", "attr:tier"),
        ]
        .iter()
        .map(|(a, b)| (a.to_string(), b.to_string()))
        .collect();
        assert_eq!(m.0, want);
    }

    #[test]
    fn separators_are_sniffed_from_the_header_line() {
        assert_eq!(sniff_delimiter(b"phone;name;city"), b';');
        assert_eq!(sniff_delimiter(b"phone\tname"), b'\t');
        assert_eq!(sniff_delimiter(b"phone,name"), b',');
        assert_eq!(sniff_delimiter(b"phone"), b',');
    }

    #[test]
    fn a_head_skips_the_byte_order_mark_and_finds_the_first_data_row() {
        let csv = "\u{feff}phone;name\n+6281234567890;Ana\n+6281234567891;Budi\n";
        let h = head(std::io::Cursor::new(csv.as_bytes().to_vec()), 10).unwrap();
        assert_eq!(h.headers, headers(&["phone", "name"]));
        assert_eq!(h.delimiter, b';');
        assert_eq!(h.rows.len(), 2);
        assert_eq!(
            &csv.as_bytes()[h.data_offset as usize..][..15],
            b"+6281234567890;"
        );
    }

    #[test]
    fn rows_are_validated_and_normalised() {
        let cols = resolve(
            &suggest(&headers(&["phone", "name", "labels", "city"])),
            &headers(&["phone", "name", "labels", "city"]),
        )
        .unwrap();
        let options = Options {
            default_country: Some("ID".into()),
            labels: vec!["imported".into()],
            delimiter: b',',
        };
        let rec = csv::ByteRecord::from(vec!["0812-3456-7890", "Ana", "VIP; Jakarta", "'=SUM(A1)"]);
        let c = row(&rec, &cols, &options).unwrap();
        assert_eq!(
            (c.wa_id.as_str(), c.phone.as_str(), c.name.as_deref()),
            ("6281234567890", "+6281234567890", Some("Ana"))
        );
        assert_eq!(c.labels, vec!["imported", "vip", "jakarta"]);
        assert_eq!(c.attributes["city"], "=SUM(A1)");
        let bad = csv::ByteRecord::from(vec!["not a number", "Ana"]);
        assert!(row(&bad, &cols, &options).is_err());
        assert!(resolve(&Mapping::default(), &headers(&["phone"])).is_err());
    }
}
