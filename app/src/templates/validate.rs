//! Meta's rules for a message template, checked before it is submitted. Pure Rust with no
//! server-only dependency: the builder runs it in the browser (WASM) while the admin types, and
//! `POST /api/v1/templates` runs the same code before calling Graph.
//!
//! The rules follow Meta's template guidelines and the errors Meta answers to a create call
//! (e.g. subcode 2388299 "Variables can't be at the start or end of the template"); each problem
//! names the component and field it is about, in plain words.

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// The longest template name Meta accepts.
pub const NAME_MAX: usize = 512;
/// Header text (variables included).
pub const HEADER_MAX: usize = 60;
/// Body text.
pub const BODY_MAX: usize = 1024;
/// Footer text.
pub const FOOTER_MAX: usize = 60;
/// A button's label.
pub const BUTTON_TEXT_MAX: usize = 25;
/// A URL button's address.
pub const URL_MAX: usize = 2000;
/// All buttons together.
pub const BUTTONS_MAX: usize = 10;
/// A copy-code button's example code.
pub const COPY_CODE_MAX: usize = 15;

/// The template categories Meta knows.
pub const CATEGORIES: [&str; 3] = ["MARKETING", "UTILITY", "AUTHENTICATION"];
/// Header formats; all but `TEXT` and `LOCATION` need an uploaded example (a media handle).
pub const HEADER_FORMATS: [&str; 5] = ["TEXT", "IMAGE", "VIDEO", "DOCUMENT", "LOCATION"];

/// A template as Meta's create call takes it (`POST /{waba_id}/message_templates`).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct TemplateDraft {
    #[serde(default)]
    pub name: String,
    #[serde(default)]
    pub language: String,
    #[serde(default)]
    pub category: String,
    /// `positional` (`{{1}}`, the default) or `named` (`{{first_name}}`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parameter_format: Option<String>,
    #[serde(default)]
    pub components: Vec<Component>,
}

/// One of `HEADER`, `BODY`, `FOOTER`, `BUTTONS`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Component {
    #[serde(rename = "type", default)]
    pub kind: String,
    /// Headers only: `TEXT`, `IMAGE`, `VIDEO`, `DOCUMENT`, `LOCATION`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub format: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub text: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub example: Option<Example>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub buttons: Vec<Button>,
    /// Authentication bodies: Meta adds its security sentence.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub add_security_recommendation: Option<bool>,
    /// Authentication footers: "This code expires in N minutes."
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub code_expiration_minutes: Option<u32>,
}

/// Example values Meta's reviewers see, in Meta's field names.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Example {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub header_text: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub header_text_named_params: Option<Vec<NamedExample>>,
    /// Resumable-upload handles of a media header's sample.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub header_handle: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub body_text: Option<Vec<Vec<String>>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub body_text_named_params: Option<Vec<NamedExample>>,
}

/// `{"param_name", "example"}`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct NamedExample {
    pub param_name: String,
    pub example: String,
}

/// A button: `QUICK_REPLY`, `URL`, `PHONE_NUMBER`, `COPY_CODE` (and `OTP` for authentication).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Button {
    #[serde(rename = "type", default)]
    pub kind: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub text: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phone_number: Option<String>,
    /// A URL button's `["https://…/full-example"]`, a copy-code button's `"CODE25"`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub example: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub otp_type: Option<String>,
}

/// One problem: the field it is about (`body.text`, `buttons[2].url`, …) and what to do.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Issue {
    pub field: String,
    pub message: String,
}

fn issue(field: impl Into<String>, message: impl Into<String>) -> Issue {
    Issue {
        field: field.into(),
        message: message.into(),
    }
}

/// A `{{…}}` in a text.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Variable {
    /// What is between the braces, trimmed.
    pub name: String,
    /// Byte range of the whole `{{…}}`.
    pub start: usize,
    pub end: usize,
}

impl Variable {
    /// `{{3}}` → 3.
    pub fn number(&self) -> Option<u32> {
        if self.name.is_empty() || !self.name.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        self.name.parse().ok()
    }
}

/// The variables of a text, in order, and whether a `{{` was left open.
pub fn variables(text: &str) -> (Vec<Variable>, bool) {
    let mut out = Vec::new();
    let mut rest = 0;
    while let Some(open) = text[rest..].find("{{") {
        let start = rest + open;
        match text[start + 2..].find("}}") {
            Some(close) => {
                let end = start + 2 + close + 2;
                out.push(Variable {
                    name: text[start + 2..end - 2].to_string(),
                    start,
                    end,
                });
                rest = end;
            }
            None => return (out, true),
        }
    }
    (out, false)
}

/// Whether the template uses named variables.
pub fn is_named(t: &TemplateDraft) -> bool {
    t.parameter_format
        .as_deref()
        .is_some_and(|f| f.eq_ignore_ascii_case("named"))
}

/// A text with each variable replaced by `value(variable name)` (the preview uses it).
pub fn fill(text: &str, value: impl Fn(&str) -> Option<String>) -> String {
    let (vars, _) = variables(text);
    let mut out = String::with_capacity(text.len());
    let mut at = 0;
    for v in vars {
        out.push_str(&text[at..v.start]);
        match value(v.name.trim()) {
            Some(s) if !s.is_empty() => out.push_str(&s),
            _ => out.push_str(&text[v.start..v.end]),
        }
        at = v.end;
    }
    out.push_str(&text[at..]);
    out
}

/// Parses Meta's create body (as JSON) and checks it; a body that is not a template object
/// answers one problem about `body`.
pub fn validate_json(json: &str) -> Vec<Issue> {
    let parsed = match serde_json::from_str::<Value>(json) {
        Ok(v @ Value::Object(_)) => serde_json::from_value::<TemplateDraft>(v),
        Ok(_) => {
            return vec![issue(
                "body",
                "The template must be an object with name, language, category and components.",
            )]
        }
        Err(e) => Err(e),
    };
    match parsed {
        Ok(t) => validate(&t),
        Err(e) => vec![issue(
            "body",
            format!("The template is not in Meta's create format: {e}"),
        )],
    }
}

/// The same check for the browser run of the shared table (`end2end/tests/templates.spec.ts`
/// calls it from the page's WASM module): the problems as a JSON array.
#[cfg(feature = "hydrate")]
#[wasm_bindgen::prelude::wasm_bindgen(js_name = validateTemplate)]
pub fn validate_template_js(json: &str) -> String {
    serde_json::to_string(&validate_json(json)).unwrap_or_else(|_| "[]".into())
}

/// Every problem with a template, in the order of its fields; empty when Meta's rules hold.
pub fn validate(t: &TemplateDraft) -> Vec<Issue> {
    let mut out = Vec::new();
    check_name(&t.name, &mut out);
    check_language(&t.language, &mut out);
    let category = t.category.to_ascii_uppercase();
    if t.category.trim().is_empty() {
        out.push(issue(
            "category",
            "Choose a category: marketing, utility or authentication.",
        ));
    } else if !CATEGORIES.contains(&category.as_str()) {
        out.push(issue(
            "category",
            format!(
                "The category \"{}\" is not one of marketing, utility or authentication.",
                t.category
            ),
        ));
    }
    let named = match t.parameter_format.as_deref() {
        None => false,
        Some(f) if f.eq_ignore_ascii_case("positional") => false,
        Some(f) if f.eq_ignore_ascii_case("named") => true,
        Some(f) => {
            out.push(issue(
                "parameter_format",
                format!("The parameter format \"{f}\" must be positional or named."),
            ));
            false
        }
    };
    let auth = category == "AUTHENTICATION";

    let mut seen: Vec<String> = Vec::new();
    for (i, c) in t.components.iter().enumerate() {
        let kind = c.kind.to_ascii_uppercase();
        if !matches!(kind.as_str(), "HEADER" | "BODY" | "FOOTER" | "BUTTONS") {
            out.push(issue(
                format!("components[{i}].type"),
                format!(
                    "Component {} has the type \"{}\"; use header, body, footer or buttons.",
                    i + 1,
                    c.kind
                ),
            ));
            continue;
        }
        if seen.contains(&kind) {
            out.push(issue(
                lower(&kind),
                format!(
                    "The template has more than one {}; it can have one.",
                    lower(&kind)
                ),
            ));
            continue;
        }
        seen.push(kind.clone());
        match kind.as_str() {
            "HEADER" => check_header(c, named, &mut out),
            "BODY" => check_body(c, named, auth, &mut out),
            "FOOTER" => check_footer(c, auth, &mut out),
            _ => check_buttons(&c.buttons, auth, &mut out),
        }
    }
    if !seen.iter().any(|k| k == "BODY") {
        out.push(issue("body", "The template needs a body."));
    }
    out
}

fn lower(kind: &str) -> String {
    kind.to_ascii_lowercase()
}

fn check_name(name: &str, out: &mut Vec<Issue>) {
    if name.is_empty() {
        out.push(issue("name", "Give the template a name."));
    } else if name.chars().count() > NAME_MAX {
        out.push(issue(
            "name",
            format!("The name is longer than {NAME_MAX} characters."),
        ));
    } else if let Some(c) = name
        .chars()
        .find(|c| !(c.is_ascii_lowercase() || c.is_ascii_digit() || *c == '_'))
    {
        out.push(issue(
            "name",
            format!(
                "The name contains \"{c}\": use only lowercase letters, digits and underscores (order_update)."
            ),
        ));
    }
}

/// Meta's language codes: `en`, `fil`, `en_US`, `zh_HK`, `es_419`-style regions.
fn check_language(code: &str, out: &mut Vec<Issue>) {
    if code.is_empty() {
        out.push(issue("language", "Choose the template's language (en_US)."));
        return;
    }
    let (lang, region) = match code.split_once('_') {
        Some((l, r)) => (l, Some(r)),
        None => (code, None),
    };
    let lang_ok = (2..=3).contains(&lang.len()) && lang.bytes().all(|b| b.is_ascii_lowercase());
    let region_ok = region.is_none_or(|r| {
        (2..=4).contains(&r.len())
            && r.bytes()
                .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit())
    });
    if !lang_ok || !region_ok {
        out.push(issue(
            "language",
            format!("\"{code}\" is not a language code like en, en_US or pt_BR."),
        ));
    }
}

/// What the variables of one text look like; `where_` is `header` or `body`.
fn check_variables(where_: &str, text: &str, named: bool, out: &mut Vec<Issue>) -> Vec<Variable> {
    let field = format!("{where_}.text");
    let title = capital(where_);
    let (vars, open) = variables(text);
    if open {
        out.push(issue(
            &field,
            format!("{title}: a {{{{ has no closing }}}}."),
        ));
    }
    let mut fine = true;
    for v in &vars {
        let ok = if named {
            is_param_name(&v.name)
        } else {
            v.number().is_some_and(|n| n >= 1)
        };
        if !ok {
            fine = false;
            let hint = if named {
                "named variables use lowercase letters, digits and underscores, like {{first_name}}"
            } else {
                "positional variables are numbers, like {{1}}; choose the named parameter format for names"
            };
            out.push(issue(
                &field,
                format!(
                    "{title}: {{{{{}}}}} is not a valid variable: {hint}.",
                    v.name
                ),
            ));
        }
    }
    if !fine {
        return Vec::new();
    }
    if !named {
        let mut numbers: Vec<u32> = vars.iter().filter_map(Variable::number).collect();
        numbers.sort_unstable();
        numbers.dedup();
        if let Some((i, n)) = numbers
            .iter()
            .enumerate()
            .find(|(i, n)| **n != *i as u32 + 1)
        {
            out.push(issue(
                &field,
                format!(
                    "{title}: variables must be numbered in sequence from {{{{1}}}}; {{{{{}}}}} is missing before {{{{{n}}}}}.",
                    i + 1
                ),
            ));
        }
    }
    for pair in vars.windows(2) {
        if text[pair[0].end..pair[1].start].trim().is_empty() {
            out.push(issue(
                &field,
                format!(
                    "{title}: {{{{{}}}}} and {{{{{}}}}} are next to each other; put words between variables.",
                    pair[0].name, pair[1].name
                ),
            ));
            break;
        }
    }
    vars
}

fn capital(s: &str) -> String {
    let mut c = s.chars();
    match c.next() {
        Some(f) => f.to_uppercase().chain(c).collect(),
        None => String::new(),
    }
}

/// Named variables: lowercase letters, digits and underscores, not starting with a digit.
fn is_param_name(name: &str) -> bool {
    !name.is_empty()
        && !name.starts_with(|c: char| c.is_ascii_digit())
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
}

/// The distinct variable names in order of first use.
fn distinct(vars: &[Variable]) -> Vec<String> {
    let mut names: Vec<String> = Vec::new();
    for v in vars {
        if !names.contains(&v.name) {
            names.push(v.name.clone());
        }
    }
    names
}

/// Examples for every variable: positional as a list, named as `{param_name, example}`.
fn check_examples(
    where_: &str,
    vars: &[Variable],
    named: bool,
    positional: Option<&[String]>,
    named_examples: Option<&[NamedExample]>,
    out: &mut Vec<Issue>,
) {
    let field = format!("{where_}.example");
    let title = capital(where_);
    let names = distinct(vars);
    if names.is_empty() {
        return;
    }
    if named {
        let given = named_examples.unwrap_or_default();
        for n in &names {
            match given.iter().find(|e| &e.param_name == n) {
                Some(e) if !e.example.trim().is_empty() => {}
                _ => out.push(issue(
                    &field,
                    format!("{title}: give an example value for {{{{{n}}}}}."),
                )),
            }
        }
        for e in given {
            if !names.contains(&e.param_name) {
                out.push(issue(
                    &field,
                    format!(
                        "{title}: the example for \"{}\" matches no variable in the text.",
                        e.param_name
                    ),
                ));
            }
        }
    } else {
        let given = positional.unwrap_or_default();
        if given.len() != names.len() || given.iter().any(|e| e.trim().is_empty()) {
            let what = match names.len() {
                1 => "its variable".to_string(),
                n => format!("each of its {n} variables"),
            };
            out.push(issue(
                &field,
                format!("{title}: give an example value for {what}."),
            ));
        }
    }
}

fn check_header(c: &Component, named: bool, out: &mut Vec<Issue>) {
    let format = c.format.as_deref().unwrap_or("").to_ascii_uppercase();
    if !HEADER_FORMATS.contains(&format.as_str()) {
        out.push(issue(
            "header.format",
            "Header: choose text, image, video, document or location.",
        ));
        return;
    }
    let example = c.example.clone().unwrap_or_default();
    match format.as_str() {
        "TEXT" => {
            let text = c.text.as_deref().unwrap_or("");
            if text.trim().is_empty() {
                out.push(issue("header.text", "Header: write the header text."));
                return;
            }
            let len = text.chars().count();
            if len > HEADER_MAX {
                out.push(issue(
                    "header.text",
                    format!("Header: the text has {len} characters; at most {HEADER_MAX}."),
                ));
            }
            if text.contains('\n') {
                out.push(issue(
                    "header.text",
                    "Header: the text must fit on one line.",
                ));
            }
            let vars = check_variables("header", text, named, out);
            if distinct(&vars).len() > 1 {
                out.push(issue(
                    "header.text",
                    "Header: the text can have at most one variable.",
                ));
                return;
            }
            check_examples(
                "header",
                &vars,
                named,
                example.header_text.as_deref(),
                example.header_text_named_params.as_deref(),
                out,
            );
        }
        "LOCATION" => {}
        media => {
            let handles = example.header_handle.unwrap_or_default();
            if handles.iter().all(|h| h.trim().is_empty()) {
                out.push(issue(
                    "header.example",
                    format!(
                        "Header: upload a sample {} (Meta reviews it).",
                        media.to_ascii_lowercase()
                    ),
                ));
            }
        }
    }
}

fn check_body(c: &Component, named: bool, auth: bool, out: &mut Vec<Issue>) {
    let text = c.text.as_deref().unwrap_or("");
    if auth {
        // Meta writes authentication bodies itself ("{{1}} is your verification code.").
        return;
    }
    if text.trim().is_empty() {
        out.push(issue("body.text", "Body: write the message text."));
        return;
    }
    let len = text.chars().count();
    if len > BODY_MAX {
        out.push(issue(
            "body.text",
            format!("Body: the text has {len} characters; at most {BODY_MAX}."),
        ));
    }
    let vars = check_variables("body", text, named, out);
    let trimmed = text.trim();
    let offset = text.len() - text.trim_start().len();
    if let (Some(first), Some(last)) = (vars.first(), vars.last()) {
        if first.start == offset || last.end == offset + trimmed.len() {
            out.push(issue(
                "body.text",
                "Body: the text cannot start or end with a variable; add words before or after it.",
            ));
        }
    }
    let example = c.example.clone().unwrap_or_default();
    let positional = example.body_text.as_ref().and_then(|rows| rows.first());
    check_examples(
        "body",
        &vars,
        named,
        positional.map(Vec::as_slice),
        example.body_text_named_params.as_deref(),
        out,
    );
}

fn check_footer(c: &Component, auth: bool, out: &mut Vec<Issue>) {
    let text = c.text.as_deref().unwrap_or("");
    if auth && text.is_empty() {
        return;
    }
    if text.trim().is_empty() {
        out.push(issue(
            "footer.text",
            "Footer: write the footer text or remove the footer.",
        ));
        return;
    }
    let len = text.chars().count();
    if len > FOOTER_MAX {
        out.push(issue(
            "footer.text",
            format!("Footer: the text has {len} characters; at most {FOOTER_MAX}."),
        ));
    }
    if text.contains("{{") {
        out.push(issue(
            "footer.text",
            "Footer: the footer cannot contain variables.",
        ));
    }
}

fn check_buttons(buttons: &[Button], auth: bool, out: &mut Vec<Issue>) {
    if buttons.is_empty() {
        out.push(issue(
            "buttons",
            "Buttons: add a button or remove the buttons.",
        ));
        return;
    }
    if buttons.len() > BUTTONS_MAX {
        out.push(issue(
            "buttons",
            format!(
                "Buttons: {} buttons; a template can have at most {BUTTONS_MAX}.",
                buttons.len()
            ),
        ));
    }
    let kinds: Vec<String> = buttons
        .iter()
        .map(|b| b.kind.to_ascii_uppercase())
        .collect();
    let count = |k: &str| kinds.iter().filter(|x| x.as_str() == k).count();
    for (kind, max, label) in [
        ("URL", 2, "website (URL) buttons"),
        ("PHONE_NUMBER", 1, "call (phone number) button"),
        ("COPY_CODE", 1, "copy code button"),
    ] {
        if count(kind) > max {
            out.push(issue(
                "buttons",
                format!("Buttons: at most {max} {label}; there are {}.", count(kind)),
            ));
        }
    }
    // Quick replies and call-to-action buttons each form one group: QR QR URL, not QR URL QR.
    let groups = kinds
        .windows(2)
        .filter(|w| (w[0] == "QUICK_REPLY") != (w[1] == "QUICK_REPLY"))
        .count();
    if groups > 1 {
        out.push(issue(
            "buttons",
            "Buttons: keep the quick replies together, before or after the other buttons.",
        ));
    }
    for (i, (b, kind)) in buttons.iter().zip(&kinds).enumerate() {
        let field = |f: &str| format!("buttons[{i}].{f}");
        let n = i + 1;
        let text = b.text.as_deref().unwrap_or("");
        let needs_text = matches!(kind.as_str(), "QUICK_REPLY" | "URL" | "PHONE_NUMBER");
        if needs_text && text.trim().is_empty() {
            out.push(issue(
                field("text"),
                format!("Button {n}: write its label."),
            ));
        } else if text.chars().count() > BUTTON_TEXT_MAX {
            out.push(issue(
                field("text"),
                format!("Button {n}: the label is longer than {BUTTON_TEXT_MAX} characters."),
            ));
        }
        if text.contains("{{") {
            out.push(issue(
                field("text"),
                format!("Button {n}: a label cannot contain variables."),
            ));
        }
        match kind.as_str() {
            "QUICK_REPLY" => {}
            "URL" => check_url_button(n, b, &field, out),
            "PHONE_NUMBER" => {
                let phone = b.phone_number.as_deref().unwrap_or("").trim();
                let digits = phone.strip_prefix('+').unwrap_or(phone);
                if digits.len() < 5 || digits.len() > 20 || !digits.bytes().all(|c| c.is_ascii_digit()) {
                    out.push(issue(
                        field("phone_number"),
                        format!("Button {n}: the phone number must be digits with the country code, like 15550051310."),
                    ));
                }
            }
            "COPY_CODE" => {
                let code = b.example.as_ref().and_then(Value::as_str).unwrap_or("");
                if code.trim().is_empty() || code.chars().count() > COPY_CODE_MAX {
                    out.push(issue(
                        field("example"),
                        format!("Button {n}: give an example code of 1 to {COPY_CODE_MAX} characters."),
                    ));
                }
            }
            "OTP" if auth => {
                let otp = b.otp_type.as_deref().unwrap_or("").to_ascii_uppercase();
                if !matches!(otp.as_str(), "COPY_CODE" | "ONE_TAP" | "ZERO_TAP") {
                    out.push(issue(
                        field("otp_type"),
                        format!("Button {n}: the one-time password button is copy code, one tap or zero tap."),
                    ));
                }
            }
            "OTP" => out.push(issue(
                field("type"),
                format!("Button {n}: one-time password buttons belong to authentication templates."),
            )),
            other => out.push(issue(
                field("type"),
                format!("Button {n}: \"{other}\" is not a button type; use quick reply, URL, phone number or copy code."),
            )),
        }
    }
    if auth && count("OTP") != 1 {
        out.push(issue(
            "buttons",
            "Buttons: an authentication template has exactly one one-time password button.",
        ));
    }
}

fn check_url_button(n: usize, b: &Button, field: &dyn Fn(&str) -> String, out: &mut Vec<Issue>) {
    let url = b.url.as_deref().unwrap_or("").trim();
    if !(url.starts_with("https://") || url.starts_with("http://")) || url.len() < 10 {
        out.push(issue(
            field("url"),
            format!("Button {n}: the website address must start with https://."),
        ));
        return;
    }
    if url.len() > URL_MAX {
        out.push(issue(
            field("url"),
            format!("Button {n}: the address is longer than {URL_MAX} characters."),
        ));
    }
    let (vars, open) = variables(url);
    if open || vars.len() > 1 {
        out.push(issue(
            field("url"),
            format!("Button {n}: the address can have one variable, {{{{1}}}}, at its end."),
        ));
        return;
    }
    let Some(v) = vars.first() else {
        return;
    };
    if v.end != url.len() || v.name != "1" {
        out.push(issue(
            field("url"),
            format!("Button {n}: a variable in the address must be {{{{1}}}} at its very end."),
        ));
        return;
    }
    let example = match &b.example {
        Some(Value::Array(a)) => a.first().and_then(Value::as_str).unwrap_or(""),
        Some(Value::String(s)) => s.as_str(),
        _ => "",
    };
    if !example.starts_with(&url[..v.start]) || example.len() <= v.start {
        out.push(issue(
            field("example"),
            format!(
                "Button {n}: give a full example address, like {}summer2025.",
                &url[..v.start]
            ),
        ));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The table shared with the browser run (`end2end/tests/templates.spec.ts`).
    pub const CASES: &str = include_str!("cases.json");

    #[derive(Deserialize)]
    struct Case {
        case: String,
        valid: bool,
        #[serde(default)]
        field: Option<String>,
        template: Value,
    }

    #[test]
    fn the_shared_table_of_templates_validates_as_expected() {
        let cases: Vec<Case> = serde_json::from_str(CASES).expect("cases.json parses");
        assert!(cases.len() >= 25, "the table has {} cases", cases.len());
        for c in &cases {
            let issues = validate_json(&c.template.to_string());
            if c.valid {
                assert!(issues.is_empty(), "{}: unexpected {issues:?}", c.case);
            } else {
                let field = c.field.as_deref().expect("invalid cases name a field");
                assert!(
                    issues.iter().any(|i| i.field == field),
                    "{}: expected a problem with {field}, got {issues:?}",
                    c.case
                );
            }
        }
    }

    #[test]
    fn variables_are_found_in_order_and_filled() {
        let (vars, open) = variables("Hi {{1}}, order {{order_id}} {{");
        assert!(open);
        assert_eq!(vars.len(), 2);
        assert_eq!(vars[1].name, "order_id");
        assert_eq!(
            fill("Hi {{1}}, see {{2}}", |n| (n == "1").then(|| "Ana".into())),
            "Hi Ana, see {{2}}"
        );
    }
}
