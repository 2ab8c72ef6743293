//! CSV import, pure: the header, the rows, each row's days, with bounds
//! on rows and cells. Its own file with no dependency on the API around
//! it so that it can be fuzzed on its own (fuzz/, target `csv_import`);
//! the API maps its errors to answers ([`super::subscribers`]).
//!
//! Depends on: csv, genki-store (records).

use genki_store::{Schedule, Subscriber};

/// Rows one CSV import may carry (a municipality's whole roll fits; a
/// bigger file is split). More: refused before anything is stored.
pub const MAX_IMPORT_ROWS: usize = 100_000;
/// Bytes in one CSV cell (the longest field, notes, takes 4000).
pub const MAX_CELL: usize = 4_000;

/// Why a whole import is refused.
#[derive(Debug, thiserror::Error)]
pub enum CsvError {
    /// The header row could not be read.
    #[error("{0}")]
    Header(String),
    /// The header names too few or unknown columns.
    #[error("{0}")]
    Columns(String),
    #[error("at most {MAX_IMPORT_ROWS} rows per import; split the file")]
    TooManyRows,
}

/// The caller's rule for one person: the field at fault and why, when refused.
pub type Validate<'a> = &'a dyn Fn(&Subscriber) -> Result<(), (String, String)>;

/// A row not imported: its line, the field at fault, why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RowIssue {
    pub line: u64,
    pub field: String,
    pub message: String,
}

/// Days of the week 1 (Monday)–7 as "1-5" or "1,3,5": each checked
/// before a range is expanded, at most 7 distinct days in the result
/// (a cell of "1-255" repeated is refused, not expanded).
pub fn parse_days(s: &str) -> Result<Vec<u8>, String> {
    if s.len() > 64 {
        return Err("at most 64 characters, e.g. 1-5 or 1,3,5".into());
    }
    let day = |d: &str, part: &str| -> Result<u8, String> {
        match d.trim().parse::<u8>() {
            Ok(n) if (1..=7).contains(&n) => Ok(n),
            _ => Err(format!(
                "bad day {part:?}: days are 1 (Monday) to 7 (Sunday)"
            )),
        }
    };
    let mut out = Vec::new();
    for part in s.split([',', ' ']).filter(|p| !p.is_empty()) {
        let (a, b) = match part.split_once('-') {
            Some((a, b)) => (day(a, part)?, day(b, part)?),
            None => (day(part, part)?, day(part, part)?),
        };
        if a > b {
            return Err(format!("bad day range {part:?}"));
        }
        out.extend((a..=b).filter(|d| !out.contains(d)).collect::<Vec<_>>());
    }
    Ok(out)
}

/// Parse an import: the people it names, and the rows refused (each for
/// itself, with its line and field). `validate` is the API's rule for a
/// person (field and message when refused). Bounded: [`MAX_IMPORT_ROWS`]
/// rows, [`MAX_CELL`] bytes a cell; never panics on any input (fuzzed:
/// fuzz/, `csv_import`).
pub fn parse_rows(
    text: &str,
    tenant_id: u64,
    now: u64,
    validate: Validate<'_>,
) -> Result<(Vec<Subscriber>, Vec<RowIssue>), CsvError> {
    let mut rdr = csv::ReaderBuilder::new()
        .flexible(true)
        .trim(csv::Trim::All)
        .from_reader(text.as_bytes());
    let headers = rdr
        .headers()
        .map_err(|e| CsvError::Header(format!("header row: {e}")))?
        .clone();
    let col = |n: &str| headers.iter().position(|h| h.eq_ignore_ascii_case(n));
    let (Some(name_c), Some(phone_c)) = (col("name"), col("phone")) else {
        return Err(CsvError::Columns(
            "the header row needs name and phone columns".into(),
        ));
    };
    let known = ["name", "phone", "days", "times", "paused_until", "notes"];
    if let Some(h) = headers
        .iter()
        .find(|h| !known.iter().any(|k| k.eq_ignore_ascii_case(h)))
    {
        return Err(CsvError::Columns(format!(
            "unknown column {h:?}; known: {}",
            known.join(", ")
        )));
    }
    let (days_c, times_c, paused_c, notes_c) =
        (col("days"), col("times"), col("paused_until"), col("notes"));
    let mut subs = Vec::new();
    let mut errors = Vec::new();
    for (n, rec) in rdr.records().enumerate() {
        if n >= MAX_IMPORT_ROWS {
            return Err(CsvError::TooManyRows);
        }
        let rec = match rec {
            Ok(r) => r,
            Err(e) => {
                let line = e.position().map(|p| p.line()).unwrap_or(0);
                errors.push(RowIssue {
                    line,
                    field: "row".into(),
                    message: e.to_string(),
                });
                continue;
            }
        };
        let line = rec.position().map(|p| p.line()).unwrap_or(0);
        if let Some(i) = rec.iter().position(|c| c.len() > MAX_CELL) {
            errors.push(RowIssue {
                line,
                field: headers.get(i).unwrap_or("row").to_string(),
                message: format!("a cell of more than {MAX_CELL} bytes"),
            });
            continue;
        }
        let get = |c: Option<usize>| c.and_then(|c| rec.get(c)).unwrap_or("").to_string();
        let days = get(days_c);
        let times = get(times_c);
        let schedule = if days.is_empty() && times.is_empty() {
            None
        } else {
            match parse_days(&days) {
                Ok(d) => Some(Schedule {
                    days: d,
                    times: times
                        .split([';', ' '])
                        .filter(|t| !t.is_empty())
                        .map(str::to_string)
                        .collect(),
                }),
                Err(m) => {
                    errors.push(RowIssue {
                        line,
                        field: "days".into(),
                        message: m,
                    });
                    continue;
                }
            }
        };
        let paused = get(paused_c);
        let s = Subscriber {
            id: 0,
            tenant_id,
            name: get(Some(name_c)),
            phone: get(Some(phone_c)),
            schedule,
            paused_until: (!paused.is_empty()).then_some(paused),
            notes: get(notes_c),
            created_at_ms: now,
        };
        match validate(&s) {
            Ok(()) => subs.push(s),
            Err((field, message)) => errors.push(RowIssue {
                line,
                field,
                message,
            }),
        }
    }
    Ok((subs, errors))
}
