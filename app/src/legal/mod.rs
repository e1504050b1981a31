//! The privacy policy and terms: the owner's text, parsed into sections and rendered with the
//! configured company name and contact address.

use leptos::prelude::*;
use leptos_meta::Title;
use serde::{Deserialize, Serialize};

use crate::layout::PublicLayout;

/// The owner's privacy policy, verbatim.
pub const PRIVACY_POLICY: &str = include_str!("../../content/privacy-policy.txt");
/// The terms of service.
pub const TERMS: &str = include_str!("../../content/terms.txt");
/// The company name written in the texts, replaced by the configured one.
pub const DEFAULT_COMPANY: &str = "Qontak";
/// The contact address written in the texts, replaced by the configured one.
pub const DEFAULT_CONTACT_EMAIL: &str = "service@setiamanggalaabadi.com";

/// Which legal document.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum LegalKind {
    Privacy,
    Terms,
}

/// A parsed legal document.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LegalDoc {
    pub title: String,
    pub last_updated: Option<String>,
    pub sections: Vec<Section>,
}

/// One numbered section (`2. Information We Collect`) and what follows it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Section {
    pub heading: String,
    pub blocks: Vec<Block>,
}

/// A paragraph or a bulleted list.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Block {
    Paragraph(String),
    List(Vec<String>),
}

fn is_heading(line: &str) -> bool {
    let digits = line.chars().take_while(char::is_ascii_digit).count();
    digits > 0 && line[digits..].starts_with(". ")
}

/// Parses the plain-text format of the owner's policy: a title line, `Last updated: …`,
/// numbered headings, `- ` list items and paragraphs. Company name and e-mail are substituted.
pub fn parse(text: &str, company: &str, email: &str) -> LegalDoc {
    let text = text
        .replace(DEFAULT_CONTACT_EMAIL, email)
        .replace(DEFAULT_COMPANY, company);
    let mut lines = text.lines().map(str::trim).filter(|l| !l.is_empty());
    let title = lines.next().unwrap_or_default().to_string();
    let mut doc = LegalDoc {
        title,
        last_updated: None,
        sections: Vec::new(),
    };
    for line in lines {
        if let Some(date) = line.strip_prefix("Last updated:") {
            doc.last_updated = Some(date.trim().to_string());
        } else if is_heading(line) {
            doc.sections.push(Section {
                heading: line.to_string(),
                blocks: Vec::new(),
            });
        } else {
            if doc.sections.is_empty() {
                doc.sections.push(Section {
                    heading: String::new(),
                    blocks: Vec::new(),
                });
            }
            let blocks = &mut doc.sections.last_mut().expect("pushed above").blocks;
            match (line.strip_prefix("- "), blocks.last_mut()) {
                (Some(item), Some(Block::List(items))) => items.push(item.to_string()),
                (Some(item), _) => blocks.push(Block::List(vec![item.to_string()])),
                (None, _) => blocks.push(Block::Paragraph(line.to_string())),
            }
        }
    }
    doc
}

/// A legal document as the page shows it: its title, and its body as HTML.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LegalHtml {
    pub title: String,
    pub html: String,
}

/// The privacy policy or the terms, with this installation's company name and contact. The
/// server renders the body (text escaped by Leptos's renderer), so the WASM client carries no
/// decoder or view code for the documents' structure, only a string.
#[server(endpoint = "legal_document")]
pub async fn legal_document(kind: LegalKind) -> Result<LegalHtml, ServerFnError> {
    let state = crate::server::state::app_state()?;
    let text = match kind {
        LegalKind::Privacy => PRIVACY_POLICY,
        LegalKind::Terms => TERMS,
    };
    let doc = parse(text, &state.site.company_name, &state.site.contact_email);
    Ok(LegalHtml {
        title: doc.title.clone(),
        html: render_doc(doc).to_html(),
    })
}

#[component]
pub fn PrivacyPage() -> impl IntoView {
    view! { <LegalPage kind=LegalKind::Privacy /> }
}

#[component]
pub fn TermsPage() -> impl IntoView {
    view! { <LegalPage kind=LegalKind::Terms /> }
}

#[component]
fn LegalPage(kind: LegalKind) -> impl IntoView {
    let doc = Resource::new(move || kind, legal_document);
    view! {
        <PublicLayout>
            <article class="legal card">
                <Suspense fallback=|| view! { <p class="muted">"Loading…"</p> }>
                    {move || Suspend::new(async move {
                        match doc.await {
                            Ok(doc) => view! {
                                <Title text=doc.title />
                                <div class="legal-body" inner_html=doc.html></div>
                            }
                            .into_any(),
                            Err(e) => view! { <p class="error">{e.to_string()}</p> }.into_any(),
                        }
                    })}
                </Suspense>
            </article>
        </PublicLayout>
    }
}

#[cfg(feature = "ssr")]
fn render_doc(doc: LegalDoc) -> impl IntoView {
    let sections = doc
        .sections
        .into_iter()
        .map(|section| {
            let blocks = section
                .blocks
                .into_iter()
                .map(|block| match block {
                    Block::Paragraph(text) => view! { <p>{text}</p> }.into_any(),
                    Block::List(items) => view! {
                        <ul>{items.into_iter().map(|i| view! { <li>{i}</li> }).collect_view()}</ul>
                    }
                    .into_any(),
                })
                .collect_view();
            view! {
                <section>
                    <h2>{section.heading}</h2>
                    {blocks}
                </section>
            }
        })
        .collect_view();
    view! {
        <h1>{doc.title}</h1>
        {doc.last_updated.map(|d| view! { <p class="muted last-updated">"Last updated: " {d}</p> })}
        {sections}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn owner_policy_parses_into_its_eleven_sections() {
        let doc = parse(PRIVACY_POLICY, DEFAULT_COMPANY, DEFAULT_CONTACT_EMAIL);
        assert_eq!(doc.title, "Privacy Policy");
        assert_eq!(doc.last_updated.as_deref(), Some("April 1, 2026"));
        assert_eq!(doc.sections.len(), 11);
        assert_eq!(doc.sections[7].heading, "8. Cookies");
        let Block::List(items) = &doc.sections[1].blocks[0] else {
            panic!("expected a list")
        };
        assert_eq!(items.len(), 5);
        assert!(items[0].starts_with("Account information"));
    }

    #[test]
    fn company_name_and_contact_are_substituted() {
        let doc = parse(PRIVACY_POLICY, "Acme Chat", "privacy@acme.test");
        let contact = &doc.sections[10].blocks;
        assert!(contact.contains(&Block::Paragraph("Acme Chat".into())));
        assert!(contact.contains(&Block::Paragraph("Email: privacy@acme.test".into())));
        let all = format!("{doc:?}");
        assert!(!all.contains("Qontak"));
        assert!(!all.contains(DEFAULT_CONTACT_EMAIL));
    }
}
