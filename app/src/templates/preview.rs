//! A WhatsApp-style bubble that renders a template with its example (or real) values. The
//! builder shows it live while the admin types; the inbox composer's template picker uses it
//! with the values the agent fills in.

use leptos::prelude::*;

use super::validate::{fill, Component};

/// Values for a template's variables, by variable name (`"1"`, `"first_name"`), per component.
/// Missing values fall back to the template's examples, then to the `{{…}}` itself.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct PreviewValues {
    pub header: Vec<(String, String)>,
    pub body: Vec<(String, String)>,
}

/// What the bubble shows, computed without any view code (testable natively).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct PreviewModel {
    /// `TEXT`, `IMAGE`, `VIDEO`, `DOCUMENT`, `LOCATION`.
    pub header_format: Option<String>,
    pub header_text: Option<String>,
    pub body: String,
    pub footer: Option<String>,
    /// (button type, label).
    pub buttons: Vec<(String, String)>,
}

fn lookup(values: &[(String, String)], name: &str) -> Option<String> {
    values
        .iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.clone())
}

/// The examples a component carries, by variable name.
fn examples(c: &Component, header: bool) -> Vec<(String, String)> {
    let Some(e) = &c.example else {
        return Vec::new();
    };
    let (positional, named) = if header {
        (
            e.header_text.clone().unwrap_or_default(),
            e.header_text_named_params.clone(),
        )
    } else {
        (
            e.body_text
                .clone()
                .and_then(|rows| rows.into_iter().next())
                .unwrap_or_default(),
            e.body_text_named_params.clone(),
        )
    };
    let mut out: Vec<(String, String)> = positional
        .into_iter()
        .enumerate()
        .map(|(i, v)| ((i + 1).to_string(), v))
        .collect();
    out.extend(
        named
            .unwrap_or_default()
            .into_iter()
            .map(|n| (n.param_name, n.example)),
    );
    out
}

/// The bubble's content for these components and values.
pub fn model(components: &[Component], values: &PreviewValues) -> PreviewModel {
    let mut m = PreviewModel::default();
    for c in components {
        match c.kind.to_ascii_uppercase().as_str() {
            "HEADER" => {
                let format = c
                    .format
                    .clone()
                    .unwrap_or_else(|| "TEXT".into())
                    .to_ascii_uppercase();
                if format == "TEXT" {
                    let ex = examples(c, true);
                    m.header_text = c
                        .text
                        .as_deref()
                        .map(|t| fill(t, |n| lookup(&values.header, n).or_else(|| lookup(&ex, n))));
                }
                m.header_format = Some(format);
            }
            "BODY" => {
                let ex = examples(c, false);
                let text = c.text.clone().unwrap_or_default();
                m.body = fill(&text, |n| {
                    lookup(&values.body, n).or_else(|| lookup(&ex, n))
                });
            }
            "FOOTER" => {
                m.footer = c.text.clone().or_else(|| {
                    c.code_expiration_minutes
                        .map(|n| format!("This code expires in {n} minutes."))
                })
            }
            "BUTTONS" => {
                m.buttons =
                    c.buttons
                        .iter()
                        .map(|b| {
                            let kind = b.kind.to_ascii_uppercase();
                            let label =
                                b.text.clone().filter(|t| !t.is_empty()).unwrap_or_else(|| {
                                    match kind.as_str() {
                                        "COPY_CODE" => "Copy offer code".into(),
                                        "OTP" => "Copy code".into(),
                                        _ => String::new(),
                                    }
                                });
                            (kind, label)
                        })
                        .collect()
            }
            _ => {}
        }
    }
    m
}

fn button_icon(kind: &str) -> &'static str {
    match kind {
        "URL" => "↗",
        "PHONE_NUMBER" => "✆",
        "COPY_CODE" | "OTP" => "⧉",
        _ => "↩",
    }
}

/// The WhatsApp-style bubble.
#[component]
pub fn TemplatePreview(
    #[prop(into)] components: Signal<Vec<Component>>,
    #[prop(into, optional)] values: Option<Signal<PreviewValues>>,
) -> impl IntoView {
    let m = Memo::new(move |_| {
        let values = values.map(|v| v.get()).unwrap_or_default();
        model(&components.get(), &values)
    });
    view! {
        <div class="wa-preview" aria-label="Preview">
            <div class="wa-bubble">
                {move || {
                    let m = m.get();
                    let header = match m.header_format.as_deref() {
                        Some("TEXT") => m
                            .header_text
                            .clone()
                            .map(|t| view! { <p class="wa-header">{t}</p> }.into_any()),
                        Some(media) => {
                            let (kind, label) = (media.to_ascii_lowercase(), media.to_ascii_lowercase());
                            Some(view! { <div class="wa-media" data-kind=kind>{label}</div> }.into_any())
                        }
                        None => None,
                    };
                    view! {
                        {header}
                        <p class="wa-body">{m.body.clone()}</p>
                        {m.footer.clone().map(|f| view! { <p class="wa-footer">{f}</p> })}
                        <span class="wa-time">"12:00"</span>
                    }
                }}
            </div>
            <div class="wa-buttons">
                {move || {
                    m.get()
                        .buttons
                        .into_iter()
                        .map(|(kind, label)| {
                            view! { <span class="wa-button">{button_icon(&kind)} " " {label}</span> }
                        })
                        .collect_view()
                }}
            </div>
        </div>
    }
    .into_any()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::templates::validate::TemplateDraft;

    #[test]
    fn the_preview_fills_examples_and_given_values() {
        let t: TemplateDraft = serde_json::from_value(serde_json::json!({
            "components": [
                {"type": "HEADER", "format": "TEXT", "text": "Order {{1}}", "example": {"header_text": ["42"]}},
                {"type": "BODY", "text": "Hi {{1}}, it ships {{2}}.", "example": {"body_text": [["Ana", "today"]]}},
                {"type": "FOOTER", "text": "Thanks"},
                {"type": "BUTTONS", "buttons": [{"type": "COPY_CODE", "example": "X1"}]}
            ]
        }))
        .unwrap();
        let m = model(&t.components, &PreviewValues::default());
        assert_eq!(m.header_text.as_deref(), Some("Order 42"));
        assert_eq!(m.body, "Hi Ana, it ships today.");
        assert_eq!(
            m.buttons,
            vec![("COPY_CODE".into(), "Copy offer code".into())]
        );
        let values = PreviewValues {
            header: vec![],
            body: vec![("1".into(), "Bo".into())],
        };
        assert_eq!(model(&t.components, &values).body, "Hi Bo, it ships today.");
    }
}
