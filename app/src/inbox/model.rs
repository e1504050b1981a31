//! The inbox's data as the integration API sends it, and the pure rules the screens follow:
//! delivery ticks, the 24-hour window countdown, day separators, list order and filters.

use crate::domain::MessageStatus;
use serde::{Deserialize, Serialize};
use serde_json::Value;

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Page<T> {
    pub data: Vec<T>,
    #[serde(default)]
    pub next_cursor: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Contact {
    pub id: String,
    pub wa_id: Option<String>,
    pub bsuid: Option<String>,
    pub phone: Option<String>,
    pub name: Option<String>,
    pub username: Option<String>,
}

impl Contact {
    /// The name, else the phone, else the WhatsApp id, else the username.
    pub fn display(&self) -> String {
        [&self.name, &self.phone, &self.wa_id, &self.username]
            .into_iter()
            .flatten()
            .find(|s| !s.trim().is_empty())
            .cloned()
            .unwrap_or_else(|| "Unknown customer".into())
    }

    /// One or two capital letters for the avatar.
    pub fn initials(&self) -> String {
        let name = self.display();
        if !name.chars().any(char::is_alphabetic) {
            return "#".into();
        }
        name.split_whitespace()
            .filter_map(|w| w.chars().find(|c| c.is_alphanumeric()))
            .take(2)
            .flat_map(char::to_uppercase)
            .collect()
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Person {
    pub id: String,
    pub email: String,
    pub name: String,
}

impl Person {
    pub fn display(&self) -> String {
        if self.name.trim().is_empty() {
            self.email.clone()
        } else {
            self.name.clone()
        }
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Window {
    pub open: bool,
    pub expires_at: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Conversation {
    pub id: String,
    pub number_id: String,
    pub contact: Contact,
    pub status: String,
    pub assignee: Option<Person>,
    pub unread_count: i64,
    pub last_message: Option<Message>,
    pub last_activity_at: String,
    pub window: Window,
    #[serde(default)]
    pub labels: Vec<String>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ErrorInfo {
    pub code: Option<i64>,
    pub title: Option<String>,
    pub detail: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Reaction {
    pub emoji: String,
    pub direction: String,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Message {
    pub id: String,
    #[serde(default)]
    pub wamid: Option<String>,
    pub conversation_id: String,
    pub direction: String,
    #[serde(rename = "type")]
    pub kind: String,
    #[serde(default)]
    pub content: Value,
    #[serde(default)]
    pub context: Option<Value>,
    #[serde(default)]
    pub reply_to: Option<String>,
    #[serde(default)]
    pub reactions: Vec<Reaction>,
    pub status: String,
    #[serde(default)]
    pub error: Option<ErrorInfo>,
    pub timestamp: String,
    #[serde(default)]
    pub edited: bool,
    #[serde(default)]
    pub deleted: bool,
    /// The key this browser (or another client) sent it with: names the optimistic copy.
    #[serde(default)]
    pub idempotency_key: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Note {
    pub id: String,
    pub conversation_id: String,
    pub author: Option<Person>,
    pub body: String,
    pub created_at: String,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Canned {
    pub id: String,
    pub shortcut: String,
    pub body: String,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Number {
    pub id: String,
    #[serde(default)]
    pub display_phone: Option<String>,
    #[serde(default)]
    pub verified_name: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct MessageHit {
    pub message_id: String,
    pub conversation_id: String,
    pub direction: String,
    pub snippet: String,
    pub timestamp: String,
    pub contact_name: Option<String>,
    pub phone: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ContactHit {
    pub contact_id: String,
    pub name: Option<String>,
    pub phone: Option<String>,
    pub conversation_id: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SearchResults {
    pub messages: Vec<MessageHit>,
    pub contacts: Vec<ContactHit>,
}

/// A live event from `/api/v1/events`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct LiveEvent {
    #[serde(rename = "type")]
    pub kind: String,
    pub data: Value,
}

/// How a message's delivery shows next to its time.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Tick {
    pub glyph: &'static str,
    pub label: String,
    pub class: &'static str,
}

/// The tick of an outbound message; inbound ones have none.
pub fn tick(direction: &str, status: &str, error: Option<&ErrorInfo>) -> Option<Tick> {
    if direction != "outbound" {
        return None;
    }
    let t = |glyph, label: &str, class| Tick {
        glyph,
        label: label.to_string(),
        class,
    };
    Some(match status {
        "queued" => t("🕓", "Queued", "tick queued"),
        "sent" => t("✓", "Sent", "tick sent"),
        "delivered" => t("✓✓", "Delivered", "tick delivered"),
        "read" => t("✓✓", "Read", "tick read"),
        "played" => t("✓✓", "Played", "tick read"),
        "failed" => {
            let reason = error
                .map(|e| {
                    let mut parts: Vec<String> = Vec::new();
                    if let Some(title) = e.title.as_deref().filter(|s| !s.is_empty()) {
                        parts.push(title.to_string());
                    }
                    if let Some(detail) = e.detail.as_deref().filter(|s| !s.is_empty()) {
                        if !parts.iter().any(|p| p == detail) {
                            parts.push(detail.to_string());
                        }
                    }
                    if let Some(code) = e.code {
                        parts.push(format!("(code {code})"));
                    }
                    parts.join(" — ")
                })
                .filter(|s| !s.is_empty())
                .unwrap_or_else(|| "no reason given".into());
            Tick {
                glyph: "⚠",
                label: format!("Failed: {reason}"),
                class: "tick failed",
            }
        }
        other => Tick {
            glyph: "",
            label: other.to_string(),
            class: "tick",
        },
    })
}

/// Milliseconds since the epoch of an RFC 3339 time (`2026-11-30T14:00:00Z`, with or without
/// fractions and offsets); `None` when unreadable.
pub fn parse_rfc3339_ms(s: &str) -> Option<i64> {
    let s = s.trim();
    if s.len() < 20 {
        return None;
    }
    let num = |a: usize, b: usize| s.get(a..b)?.parse::<i64>().ok();
    let (y, mo, d) = (num(0, 4)?, num(5, 7)?, num(8, 10)?);
    let (h, mi, sec) = (num(11, 13)?, num(14, 16)?, num(17, 19)?);
    let mut rest = &s[19..];
    let mut millis = 0;
    if let Some(frac) = rest.strip_prefix('.') {
        let digits: String = frac.chars().take_while(char::is_ascii_digit).collect();
        let mut ms = digits.chars().take(3).collect::<String>();
        while ms.len() < 3 {
            ms.push('0');
        }
        millis = ms.parse::<i64>().ok()?;
        rest = &frac[digits.len()..];
    }
    let offset_min = match rest {
        "Z" | "z" => 0,
        o if o.len() == 6 => {
            let sign = if o.starts_with('-') { -1 } else { 1 };
            sign * (o.get(1..3)?.parse::<i64>().ok()? * 60 + o.get(4..6)?.parse::<i64>().ok()?)
        }
        _ => return None,
    };
    let days = days_from_civil(y, mo, d);
    Some(((days * 86_400 + h * 3600 + mi * 60 + sec) - offset_min * 60) * 1000 + millis)
}

/// Days since 1970-01-01 of a civil date (Howard Hinnant's algorithm).
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = if y >= 0 { y } else { y - 399 } / 400;
    let yoe = y - era * 400;
    let doy = (153 * (m + if m > 2 { -3 } else { 9 }) + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// The civil date of a day number (inverse of [`days_from_civil`]).
fn civil_from_days(z: i64) -> (i64, i64, i64) {
    let z = z + 719_468;
    let era = if z >= 0 { z } else { z - 146_096 } / 146_097;
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    (if m <= 2 { y + 1 } else { y }, m, d)
}

/// What the window banner says, `left_ms` before the window closes (≤ 0: closed).
pub fn window_countdown(left_ms: i64) -> String {
    if left_ms <= 0 {
        return "The 24-hour window is closed: only approved templates can be sent.".into();
    }
    let total_s = (left_ms + 999) / 1000;
    let (h, m, s) = (total_s / 3600, (total_s % 3600) / 60, total_s % 60);
    let left = if h > 0 {
        format!("{h}h {m:02}m")
    } else if m > 0 {
        format!("{m}m {s:02}s")
    } else {
        format!("{s}s")
    };
    format!("{left} left to reply freely")
}

/// Whether the window is open at `now_ms`, from the conversation's `expires_at`.
pub fn window_left_ms(window: &Window, now_ms: i64) -> i64 {
    window
        .expires_at
        .as_deref()
        .and_then(parse_rfc3339_ms)
        .map(|t| t - now_ms)
        .unwrap_or(0)
}

const MONTHS: [&str; 12] = [
    "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
];

/// The local day number of a time, for a clock `offset_min` minutes east of UTC.
pub fn local_day(ms: i64, offset_min: i64) -> i64 {
    (ms + offset_min * 60_000).div_euclid(86_400_000)
}

/// The separator above a day's messages: "Today", "Yesterday" or "3 Nov 2026".
pub fn day_label(ms: i64, now_ms: i64, offset_min: i64) -> String {
    let day = local_day(ms, offset_min);
    let today = local_day(now_ms, offset_min);
    match today - day {
        0 => "Today".into(),
        1 => "Yesterday".into(),
        _ => {
            let (y, m, d) = civil_from_days(day);
            format!("{d} {} {y}", MONTHS[(m - 1) as usize])
        }
    }
}

/// `14:05` local time.
pub fn clock(ms: i64, offset_min: i64) -> String {
    let minutes = (ms + offset_min * 60_000)
        .div_euclid(60_000)
        .rem_euclid(1440);
    format!("{:02}:{:02}", minutes / 60, minutes % 60)
}

/// The list's time column: the clock today, else the date.
pub fn list_time(ms: i64, now_ms: i64, offset_min: i64) -> String {
    if local_day(ms, offset_min) == local_day(now_ms, offset_min) {
        clock(ms, offset_min)
    } else {
        let (_, m, d) = civil_from_days(local_day(ms, offset_min));
        format!("{d} {}", MONTHS[(m - 1) as usize])
    }
}

/// The one-line preview of a message in the list: an icon for its type and its text.
pub fn preview(m: &Message) -> String {
    let c = &m.content;
    let s = |k: &str| c.get(k).and_then(Value::as_str).unwrap_or("").to_string();
    if m.deleted {
        return "🚫 This message was deleted".into();
    }
    let text = match m.kind.as_str() {
        "text" => s("body"),
        "image" => format!("📷 {}", non_empty(s("caption"), "Photo")),
        "video" => format!("🎥 {}", non_empty(s("caption"), "Video")),
        "audio" => {
            if c.get("voice").and_then(Value::as_bool).unwrap_or(false) {
                "🎤 Voice message".into()
            } else {
                "🎵 Audio".into()
            }
        }
        "document" => format!("📄 {}", non_empty(s("filename"), "Document")),
        "sticker" => "💟 Sticker".into(),
        "location" => format!("📍 {}", non_empty(s("name"), "Location")),
        "contacts" => "👤 Contact card".into(),
        "interactive" | "button" => format!("🔘 {}", reply_title(c)),
        "template" => format!(
            "📋 Template {}",
            c.get("name").and_then(Value::as_str).unwrap_or("")
        ),
        "order" => "🛒 Order".into(),
        "system" => format!("ℹ {}", s("body")),
        "unsupported" => "❔ Unsupported message".into(),
        other => format!("{other} message"),
    };
    text.trim().to_string()
}

fn non_empty(s: String, fallback: &str) -> String {
    if s.trim().is_empty() {
        fallback.into()
    } else {
        s
    }
}

/// The title of a button or list reply, or of interactive content we sent.
pub fn reply_title(c: &Value) -> String {
    for path in [
        &["button_reply", "title"][..],
        &["list_reply", "title"],
        &["text"],
        &["body", "text"],
        &["nfm_reply", "name"],
    ] {
        let mut v = c;
        let mut ok = true;
        for k in path {
            match v.get(*k) {
                Some(x) => v = x,
                None => {
                    ok = false;
                    break;
                }
            }
        }
        if ok {
            if let Some(s) = v.as_str() {
                return s.to_string();
            }
        }
    }
    "Reply".into()
}

/// The list's filters.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Filter {
    /// `mine`, `unassigned` or `all`.
    pub who: String,
    /// `open`, `pending`, `resolved` or `all`.
    pub status: String,
    /// One number's id, or none for all.
    pub number_id: Option<String>,
}

impl Default for Filter {
    fn default() -> Self {
        Filter {
            who: "all".into(),
            status: "open".into(),
            number_id: None,
        }
    }
}

impl Filter {
    /// The query string the API takes for this filter.
    pub fn query(&self) -> String {
        let who = match self.who.as_str() {
            "mine" => "me",
            "unassigned" => "unassigned",
            _ => "all",
        };
        let mut q = format!("status={}&assignee={who}", self.status);
        if let Some(n) = &self.number_id {
            q.push_str(&format!("&number_id={n}"));
        }
        q
    }

    /// Whether a conversation belongs in the list (for live updates), for user `me`.
    pub fn matches(&self, c: &Conversation, me: &str) -> bool {
        let who = match self.who.as_str() {
            "mine" => c.assignee.as_ref().is_some_and(|a| a.id == me),
            "unassigned" => c.assignee.is_none(),
            _ => true,
        };
        let status = self.status == "all" || self.status == c.status;
        let number = self.number_id.as_ref().is_none_or(|n| n == &c.number_id);
        who && status && number
    }
}

/// Puts a changed conversation where it belongs: replaced or inserted, newest activity first,
/// or removed when it no longer passes the filter.
pub fn upsert_conversation(list: &mut Vec<Conversation>, c: Conversation, keep: bool) {
    list.retain(|x| x.id != c.id);
    if !keep {
        return;
    }
    let at = parse_rfc3339_ms(&c.last_activity_at).unwrap_or(0);
    let pos = list
        .iter()
        .position(|x| {
            let t = parse_rfc3339_ms(&x.last_activity_at).unwrap_or(0);
            t < at || (t == at && x.id < c.id)
        })
        .unwrap_or(list.len());
    list.insert(pos, c);
}

/// The id of the queued copy the composer shows for a send made with `key`.
pub fn optimistic_id(key: &str) -> String {
    format!("tmp-{key}")
}

/// Whether `m` is already in the thread, itself or as its optimistic copy.
pub fn is_shown(thread: &[Message], m: &Message) -> bool {
    let tmp = m.idempotency_key.as_deref().map(optimistic_id);
    thread
        .iter()
        .any(|x| x.id == m.id || Some(&x.id) == tmp.as_ref())
}

/// Puts a new or changed message into a thread (oldest first), in place of its optimistic copy
/// (named by the message's idempotency key: the live event may come before the send's answer),
/// never moving its ticks backwards.
pub fn upsert_message(thread: &mut Vec<Message>, m: Message) {
    if let Some(tmp) = m.idempotency_key.as_deref().map(optimistic_id) {
        thread.retain(|x| x.id != tmp);
    }
    // A queued copy whose message is already here (a page loaded with it) stays out.
    if thread
        .iter()
        .any(|x| x.idempotency_key.as_deref().map(optimistic_id).as_deref() == Some(&m.id))
    {
        return;
    }
    if let Some(existing) = thread.iter_mut().find(|x| x.id == m.id) {
        // The server never moves a status back, so a copy behind on its ticks is an older
        // copy (an answer or a page overtaken by an event): the newer one stays whole.
        let older = match (
            MessageStatus::parse(&existing.status),
            MessageStatus::parse(&m.status),
        ) {
            (Some(have), Some(got)) => have.advance(got) == have && have != got,
            _ => false,
        };
        if !older {
            *existing = m;
        }
        return;
    }
    let at = parse_rfc3339_ms(&m.timestamp).unwrap_or(i64::MAX);
    let pos = thread
        .iter()
        .rposition(|x| parse_rfc3339_ms(&x.timestamp).unwrap_or(0) <= at)
        .map(|p| p + 1)
        .unwrap_or(0);
    thread.insert(pos, m);
}

/// Puts a freshly loaded first page of the conversation list in place of the list, then the
/// conversation changes the live stream brought while it loaded on top (the page may predate
/// them; see [`merge_loaded_page`]), each kept or dropped by the filter.
pub fn merge_loaded_list(
    page: Vec<Conversation>,
    live: &[Conversation],
    keep: impl Fn(&Conversation) -> bool,
) -> Vec<Conversation> {
    let mut list = page;
    for c in live {
        upsert_conversation(&mut list, c.clone(), keep(c));
    }
    list
}

/// Puts a freshly loaded page of a thread in place of what the thread holds, keeping what the
/// live stream brought while the page was on its way: the page may predate those (its query
/// ran before they were committed), while a live copy is the newest its message has had or
/// will be overtaken by an event still on its way. So live copies win over the page's.
pub fn merge_loaded_page(thread: &mut Vec<Message>, page: Vec<Message>) {
    let live = std::mem::replace(thread, page);
    for m in live {
        upsert_message(thread, m);
    }
}

/// The template's body text and how many variables it needs (`{{1}}` or `{{name}}`), in order.
pub fn template_variables(components: &Value) -> Vec<String> {
    let mut out = Vec::new();
    let Some(list) = components.as_array() else {
        return out;
    };
    for comp in list {
        let kind = comp.get("type").and_then(Value::as_str).unwrap_or("");
        if !kind.eq_ignore_ascii_case("BODY") {
            continue;
        }
        let text = comp.get("text").and_then(Value::as_str).unwrap_or("");
        let mut rest = text;
        while let Some(start) = rest.find("{{") {
            let after = &rest[start + 2..];
            let Some(end) = after.find("}}") else { break };
            let name = after[..end].trim().to_string();
            if !name.is_empty() && !out.contains(&name) {
                out.push(name);
            }
            rest = &after[end + 2..];
        }
    }
    out
}

/// The template's body with the given values in place of its variables.
pub fn fill_template(components: &Value, values: &[(String, String)]) -> String {
    let body = components
        .as_array()
        .and_then(|l| {
            l.iter().find(|c| {
                c.get("type")
                    .and_then(Value::as_str)
                    .is_some_and(|t| t.eq_ignore_ascii_case("BODY"))
            })
        })
        .and_then(|c| c.get("text"))
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_string();
    values.iter().fold(body, |text, (k, v)| {
        let shown = if v.is_empty() {
            format!("{{{{{k}}}}}")
        } else {
            v.clone()
        };
        text.replace(&format!("{{{{{k}}}}}"), &shown)
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn err(code: i64, title: &str, detail: &str) -> ErrorInfo {
        ErrorInfo {
            code: Some(code),
            title: Some(title.into()),
            detail: Some(detail.into()),
        }
    }

    #[test]
    fn ticks_follow_the_status_and_failures_explain_themselves() {
        assert_eq!(tick("inbound", "received", None), None);
        let glyphs: Vec<_> = ["queued", "sent", "delivered", "read"]
            .iter()
            .map(|s| tick("outbound", s, None).unwrap().glyph)
            .collect();
        assert_eq!(glyphs, ["🕓", "✓", "✓✓", "✓✓"]);
        assert_eq!(
            tick("outbound", "read", None).unwrap().class,
            "tick read",
            "read is drawn apart from delivered"
        );
        let failed = tick(
            "outbound",
            "failed",
            Some(&err(
                131047,
                "Re-engagement message",
                "More than 24 hours have passed",
            )),
        )
        .unwrap();
        assert_eq!(
            failed.label,
            "Failed: Re-engagement message — More than 24 hours have passed — (code 131047)"
        );
        assert_eq!(
            tick("outbound", "failed", None).unwrap().label,
            "Failed: no reason given"
        );
    }

    #[test]
    fn rfc3339_times_parse_with_fractions_and_offsets() {
        assert_eq!(parse_rfc3339_ms("1970-01-01T00:00:00Z"), Some(0));
        assert_eq!(
            parse_rfc3339_ms("2026-11-30T14:05:09.25Z"),
            Some(1_796_047_509_250)
        );
        assert_eq!(
            parse_rfc3339_ms("2026-11-30T21:05:09+07:00"),
            parse_rfc3339_ms("2026-11-30T14:05:09Z")
        );
        assert_eq!(parse_rfc3339_ms("yesterday"), None);
        assert_eq!(parse_rfc3339_ms("2026-11-30T14:05:09"), None);
    }

    #[test]
    fn the_window_counts_down_and_then_says_it_is_closed() {
        assert_eq!(
            window_countdown(23 * 3_600_000 + 59 * 60_000 + 1),
            "23h 59m left to reply freely"
        );
        assert_eq!(window_countdown(5 * 60_000), "5m 00s left to reply freely");
        assert_eq!(window_countdown(1), "1s left to reply freely");
        assert!(window_countdown(0).contains("closed"));
        assert!(window_countdown(-5).contains("templates"));
        let w = Window {
            open: true,
            expires_at: Some("2026-11-30T15:00:00Z".into()),
        };
        let now = parse_rfc3339_ms("2026-11-30T14:00:00Z").unwrap();
        assert_eq!(window_left_ms(&w, now), 3_600_000);
        let never = Window {
            open: false,
            expires_at: None,
        };
        assert_eq!(window_left_ms(&never, now), 0);
    }

    #[test]
    fn days_are_labelled_in_local_time() {
        let now = parse_rfc3339_ms("2026-11-30T14:00:00Z").unwrap();
        assert_eq!(day_label(now - 3_600_000, now, 0), "Today");
        assert_eq!(day_label(now - 86_400_000, now, 0), "Yesterday");
        assert_eq!(day_label(now - 30 * 86_400_000, now, 0), "31 Oct 2026");
        // 23:30 in Jakarta (UTC+7) is still the same day there, the next one in UTC-5.
        let late = parse_rfc3339_ms("2026-11-30T16:30:00Z").unwrap();
        assert_eq!(day_label(late, now, 7 * 60), "Today");
        assert_eq!(clock(late, 7 * 60), "23:30");
        assert_eq!(clock(late, -5 * 60), "11:30");
        assert_eq!(list_time(now - 2 * 86_400_000, now, 0), "28 Nov");
        assert_eq!(list_time(now, now, 0), "14:00");
    }

    fn message(id: &str, ts: &str) -> Message {
        Message {
            id: id.into(),
            wamid: None,
            conversation_id: "c".into(),
            direction: "inbound".into(),
            kind: "text".into(),
            content: json!({"body": id}),
            context: None,
            reply_to: None,
            reactions: vec![],
            status: "received".into(),
            error: None,
            timestamp: ts.into(),
            edited: false,
            deleted: false,
            idempotency_key: None,
        }
    }

    #[test]
    fn messages_land_in_time_order_and_replace_their_optimistic_copy() {
        let mut t = vec![
            message("a", "2026-11-30T10:00:00Z"),
            message("c", "2026-11-30T12:00:00Z"),
        ];
        upsert_message(&mut t, message("b", "2026-11-30T11:00:00Z"));
        upsert_message(
            &mut t,
            message(&optimistic_id("k1"), "2026-11-30T13:00:00Z"),
        );
        let mut sent = message("d", "2026-11-30T13:00:01Z");
        sent.direction = "outbound".into();
        sent.status = "sent".into();
        sent.idempotency_key = Some("k1".into());
        assert!(is_shown(&t, &sent), "its optimistic copy stands for it");
        upsert_message(&mut t, sent.clone());
        sent.status = "read".into();
        upsert_message(&mut t, sent);
        let ids: Vec<_> = t.iter().map(|m| m.id.as_str()).collect();
        assert_eq!(ids, ["a", "b", "c", "d"]);
        assert_eq!(t[3].status, "read");
        assert!(!is_shown(&t, &message("e", "2026-11-30T13:00:02Z")));
    }

    #[test]
    fn an_older_copy_changes_nothing_and_a_loaded_page_keeps_no_queued_copy() {
        let mut newer = message("m", "2026-11-30T13:00:00Z");
        newer.direction = "outbound".into();
        newer.status = "delivered".into();
        newer.idempotency_key = Some("k3".into());
        newer.reactions = vec![Reaction {
            emoji: "👍".into(),
            direction: "inbound".into(),
        }];
        let mut t = vec![newer.clone()];
        let mut answer = newer.clone();
        answer.status = "queued".into();
        answer.reactions = vec![];
        upsert_message(&mut t, answer);
        assert_eq!(
            t,
            vec![newer.clone()],
            "the late answer is older on every field"
        );
        // The thread reloads while the send is on its way: the page has the message already.
        let mut thread = vec![message(&optimistic_id("k3"), "2026-11-30T13:00:00Z")];
        merge_loaded_page(&mut thread, vec![newer]);
        let ids: Vec<_> = thread.iter().map(|m| m.id.as_str()).collect();
        assert_eq!(ids, ["m"]);
    }

    #[test]
    fn the_live_event_and_the_send_answer_leave_one_bubble_in_either_order() {
        let optimistic = message(&optimistic_id("k2"), "2026-11-30T13:00:00Z");
        let mut queued = message("m", "2026-11-30T13:00:00Z");
        queued.idempotency_key = Some("k2".into());
        queued.status = "queued".into();
        let mut sent = queued.clone();
        sent.status = "sent".into();
        // The event first, then the answer to the POST (older news: the event said queued).
        for order in [[&queued, &sent], [&sent, &queued]] {
            let mut t = vec![message("a", "2026-11-30T10:00:00Z"), optimistic.clone()];
            for m in order {
                upsert_message(&mut t, m.clone());
            }
            let ids: Vec<_> = t.iter().map(|m| m.id.as_str()).collect();
            assert_eq!(ids, ["a", "m"]);
            assert_eq!(t[1].status, "sent", "a late answer does not undo the tick");
        }
    }

    #[test]
    fn a_loaded_page_keeps_what_arrived_live_while_it_loaded() {
        // Live while loading: a new message the page predates, and a tick newer than the page.
        let mut delivered = message("b", "2026-11-30T11:00:00Z");
        delivered.status = "delivered".into();
        let mut thread = vec![message("c", "2026-11-30T12:00:00Z"), delivered];
        let mut sent = message("b", "2026-11-30T11:00:00Z");
        sent.status = "sent".into();
        let page = vec![message("a", "2026-11-30T10:00:00Z"), sent];
        merge_loaded_page(&mut thread, page);
        let ids: Vec<_> = thread.iter().map(|m| m.id.as_str()).collect();
        assert_eq!(ids, ["a", "b", "c"]);
        assert_eq!(thread[1].status, "delivered");
        // Nothing arrived meanwhile: the page as it came.
        let mut empty = vec![];
        merge_loaded_page(&mut empty, vec![message("a", "2026-11-30T10:00:00Z")]);
        assert_eq!(empty.len(), 1);
    }

    fn conversation(id: &str, at: &str, status: &str, assignee: Option<&str>) -> Conversation {
        Conversation {
            id: id.into(),
            number_id: "n1".into(),
            contact: Contact {
                id: "k".into(),
                wa_id: Some("15551234567".into()),
                bsuid: None,
                phone: Some("+15551234567".into()),
                name: None,
                username: None,
            },
            status: status.into(),
            assignee: assignee.map(|a| Person {
                id: a.into(),
                email: format!("{a}@x"),
                name: String::new(),
            }),
            unread_count: 0,
            last_message: None,
            last_activity_at: at.into(),
            window: Window {
                open: false,
                expires_at: None,
            },
            labels: vec![],
        }
    }

    #[test]
    fn a_loaded_list_keeps_the_changes_that_arrived_while_it_loaded() {
        let page = vec![
            conversation("a", "2026-11-30T12:00:00Z", "open", None),
            conversation("b", "2026-11-30T11:00:00Z", "open", None),
            conversation("c", "2026-11-30T10:00:00Z", "open", None),
        ];
        // Live meanwhile: b got a message (to the top), c was resolved (out of an Open list).
        let live = [
            conversation("b", "2026-11-30T13:00:00Z", "open", None),
            conversation("c", "2026-11-30T13:30:00Z", "resolved", None),
        ];
        let list = merge_loaded_list(page, &live, |c| c.status == "open");
        let ids: Vec<_> = list.iter().map(|c| c.id.as_str()).collect();
        assert_eq!(ids, ["b", "a"]);
        assert_eq!(list[0].last_activity_at, "2026-11-30T13:00:00Z");
    }

    #[test]
    fn a_changed_conversation_moves_to_the_top_or_leaves_the_filtered_list() {
        let mut list = vec![
            conversation("a", "2026-11-30T12:00:00Z", "open", None),
            conversation("b", "2026-11-30T11:00:00Z", "open", None),
        ];
        upsert_conversation(
            &mut list,
            conversation("b", "2026-11-30T13:00:00Z", "open", None),
            true,
        );
        assert_eq!(list[0].id, "b");
        upsert_conversation(
            &mut list,
            conversation("a", "2026-11-30T13:30:00Z", "resolved", None),
            false,
        );
        assert_eq!(list.len(), 1);
        let mine = Filter {
            who: "mine".into(),
            status: "all".into(),
            number_id: None,
        };
        assert!(mine.matches(&conversation("x", "", "open", Some("me")), "me"));
        assert!(!mine.matches(&conversation("x", "", "open", Some("you")), "me"));
        let unassigned_open = Filter {
            who: "unassigned".into(),
            ..Filter::default()
        };
        assert!(unassigned_open.matches(&conversation("x", "", "open", None), "me"));
        assert!(!unassigned_open.matches(&conversation("x", "", "pending", None), "me"));
        assert_eq!(Filter::default().query(), "status=open&assignee=all");
    }

    #[test]
    fn contacts_show_a_name_or_number_and_initials() {
        let mut c = conversation("a", "", "open", None).contact;
        assert_eq!(c.display(), "+15551234567");
        assert_eq!(c.initials(), "#");
        c.name = Some("siti nur aisyah".into());
        assert_eq!(c.initials(), "SN");
    }

    #[test]
    fn previews_name_the_type() {
        let mut m = message("x", "2026-11-30T10:00:00Z");
        assert_eq!(preview(&m), "x");
        m.kind = "image".into();
        m.content = json!({"caption": ""});
        assert_eq!(preview(&m), "📷 Photo");
        m.kind = "audio".into();
        m.content = json!({"voice": true});
        assert_eq!(preview(&m), "🎤 Voice message");
        m.kind = "interactive".into();
        m.content = json!({"type": "button_reply", "button_reply": {"id": "y", "title": "Yes"}});
        assert_eq!(preview(&m), "🔘 Yes");
        m.deleted = true;
        assert!(preview(&m).contains("deleted"));
    }

    #[test]
    fn template_variables_are_found_and_filled() {
        let comps = json!([
            {"type": "HEADER", "format": "TEXT", "text": "Hi {{9}}"},
            {"type": "BODY", "text": "Hello {{1}}, your order {{2}} ships {{1}}."}
        ]);
        assert_eq!(template_variables(&comps), vec!["1", "2"]);
        let filled = fill_template(
            &comps,
            &[("1".into(), "Ana".into()), ("2".into(), String::new())],
        );
        assert_eq!(filled, "Hello Ana, your order {{2}} ships Ana.");
        let named = json!([{"type": "BODY", "text": "Hi {{first_name}}"}]);
        assert_eq!(template_variables(&named), vec!["first_name"]);
    }
}
