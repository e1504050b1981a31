//! Broadcasts: the worker that expands a broadcast's audience, batch by batch, into template
//! messages in the outbox (which sends them at the number's pace), and the pure parts: the
//! template's variables and each contact's parameters.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};

use app::server::db::broadcasts::{BroadcastRow, Recipient};
use app::server::db::contacts::ContactFilter;
use app::server::db::read::{ContactRow, TemplateRow};

use crate::AppState;

/// Contacts per transaction when expanding an audience.
pub const BATCH: i64 = 250;

/// Who receives a broadcast.
#[derive(Debug, Clone, Default, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Audience {
    /// Contacts with this label.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub label: Option<String>,
    /// `key` (set) or `key:value`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub attribute: Option<String>,
    /// These contacts (at most 10,000).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub contact_ids: Option<Vec<String>>,
    /// Every contact of the workspace.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub all: bool,
}

impl Audience {
    pub fn filter(&self) -> ContactFilter {
        ContactFilter {
            label: self.label.clone(),
            attribute: self.attribute.as_deref().map(|a| match a.split_once(':') {
                Some((k, v)) => (k.to_string(), Some(v.to_string())),
                None => (a.to_string(), None),
            }),
            ids: self.contact_ids.clone(),
            ..Default::default()
        }
    }
}

/// Where a parameter's value comes from: `name`, `phone`, `wa_id` or `attr:<key>`, with a
/// fallback when the contact has none; or a fixed `text`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq, utoipa::ToSchema)]
#[serde(untagged)]
pub enum Source {
    Field(String),
    Detailed {
        #[serde(default)]
        source: Option<String>,
        #[serde(default)]
        fallback: Option<String>,
        #[serde(default)]
        text: Option<String>,
    },
}

/// A template's variables: body parameters by name (`1`, `2`… when positional) and header
/// parameters as `header:<name>`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Variables {
    pub named: bool,
    pub header: Vec<String>,
    pub body: Vec<String>,
}

/// The `{{…}}` placeholders of a text, in order, without repeats.
fn placeholders(text: &str) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    let mut rest = text;
    while let Some(i) = rest.find("{{") {
        let after = &rest[i + 2..];
        let Some(j) = after.find("}}") else { break };
        let p = after[..j].trim().to_string();
        if !p.is_empty() && !out.contains(&p) {
            out.push(p);
        }
        rest = &after[j + 2..];
    }
    out
}

/// The variables of a stored template.
pub fn variables(t: &TemplateRow) -> Variables {
    let components: Vec<Value> = serde_json::from_str(&t.components).unwrap_or_default();
    let text_of = |kind: &str| {
        components
            .iter()
            .find(|c| {
                c["type"]
                    .as_str()
                    .is_some_and(|x| x.eq_ignore_ascii_case(kind))
            })
            .filter(|c| {
                kind != "header"
                    || c["format"]
                        .as_str()
                        .is_none_or(|f| f.eq_ignore_ascii_case("text"))
            })
            .and_then(|c| c["text"].as_str())
            .map(placeholders)
            .unwrap_or_default()
    };
    let body = text_of("body");
    let header = text_of("header");
    let named = t
        .parameter_format
        .as_deref()
        .is_some_and(|f| f.eq_ignore_ascii_case("named"))
        || body
            .iter()
            .chain(&header)
            .any(|p| !p.bytes().all(|b| b.is_ascii_digit()));
    Variables {
        named,
        header,
        body,
    }
}

/// Checks that every variable has a source and every source names a variable and a valid field.
pub fn check_sources(
    vars: &Variables,
    sources: &BTreeMap<String, Source>,
) -> Result<(), (String, String)> {
    let wanted: Vec<String> = vars
        .header
        .iter()
        .map(|p| format!("header:{p}"))
        .chain(vars.body.iter().cloned())
        .collect();
    for w in &wanted {
        if !sources.contains_key(w) {
            return Err((
                format!("variables.{w}"),
                format!("the template needs a value for {{{{{}}}}}: map it to name, phone, attr:<key> or a text", w.trim_start_matches("header:")),
            ));
        }
    }
    for (k, s) in sources {
        if !wanted.contains(k) {
            return Err((
                format!("variables.{k}"),
                format!("the template has no variable `{k}`"),
            ));
        }
        let field = match s {
            Source::Field(f) => Some(f),
            Source::Detailed { source, text, .. } => {
                if source.is_none() && text.is_none() {
                    return Err((
                        format!("variables.{k}"),
                        "give a `source` or a `text`".into(),
                    ));
                }
                source.as_ref()
            }
        };
        if let Some(f) = field {
            let ok = matches!(f.as_str(), "name" | "phone" | "wa_id")
                || f.strip_prefix("attr:")
                    .is_some_and(crate::imports::valid_attribute_key);
            if !ok {
                return Err((
                    format!("variables.{k}"),
                    format!("`{f}` is not a contact field: use name, phone, wa_id or attr:<key>"),
                ));
            }
        }
    }
    Ok(())
}

fn value_of(c: &ContactRow, attrs: &Map<String, Value>, source: &Source) -> Option<String> {
    let field = |f: &str| -> Option<String> {
        match f {
            "name" => c.name.clone().or_else(|| c.profile_name.clone()),
            "phone" => c.phone.clone(),
            "wa_id" => c.wa_id.clone(),
            other => other
                .strip_prefix("attr:")
                .and_then(|k| match attrs.get(k) {
                    Some(Value::String(s)) => Some(s.clone()),
                    Some(Value::Null) | None => None,
                    Some(v) => Some(v.to_string()),
                }),
        }
        .filter(|v| !v.trim().is_empty())
    };
    match source {
        Source::Field(f) => field(f),
        Source::Detailed {
            source,
            fallback,
            text,
        } => text
            .clone()
            .or_else(|| source.as_deref().and_then(field))
            .or_else(|| fallback.clone())
            .filter(|v| !v.trim().is_empty()),
    }
}

/// The message for one contact: (content as stored, Graph body), or why it cannot be sent.
pub fn message_for(
    c: &ContactRow,
    name: &str,
    language: &str,
    vars: &Variables,
    sources: &BTreeMap<String, Source>,
) -> Result<(Value, Value), String> {
    let attrs: Map<String, Value> = serde_json::from_str(&c.attributes).unwrap_or_default();
    let params = |list: &[String], prefix: &str| -> Result<Vec<Value>, String> {
        list.iter()
            .map(|p| {
                let key = format!("{prefix}{p}");
                let source = sources
                    .get(&key)
                    .ok_or_else(|| format!("no source for {key}"))?;
                let text = value_of(c, &attrs, source)
                    .ok_or_else(|| format!("no value for {{{{{p}}}}}: the contact lacks it"))?;
                Ok(if vars.named {
                    json!({"type": "text", "parameter_name": p, "text": text})
                } else {
                    json!({"type": "text", "text": text})
                })
            })
            .collect()
    };
    let mut components = Vec::new();
    if !vars.header.is_empty() {
        components.push(json!({"type": "header", "parameters": params(&vars.header, "header:")?}));
    }
    if !vars.body.is_empty() {
        components.push(json!({"type": "body", "parameters": params(&vars.body, "")?}));
    }
    let mut template = json!({"name": name, "language": {"code": language}});
    if !components.is_empty() {
        template["components"] = Value::Array(components);
    }
    let mut graph = json!({"messaging_product": "whatsapp", "recipient_type": "individual", "type": "template", "template": template});
    match (&c.wa_id, &c.bsuid) {
        (Some(w), _) => graph["to"] = json!(w),
        (None, Some(b)) => graph["recipient"] = json!(b),
        (None, None) => return Err("the contact has neither a WhatsApp number nor a BSUID".into()),
    }
    Ok((template, graph))
}

/// The most recipients a number's messaging tier allows in 24 hours (None: unlimited or unknown).
pub fn tier_limit(tier: Option<&str>) -> Option<i64> {
    let t = tier?.trim().to_ascii_uppercase();
    let n = t.strip_prefix("TIER_")?;
    let (digits, factor) = match n.strip_suffix('K') {
        Some(d) => (d, 1000),
        None => (n, 1),
    };
    digits.parse::<i64>().ok().map(|d| d * factor)
}

/// Starts the worker: it expands due broadcasts one batch at a time.
pub fn start(state: AppState) {
    tokio::spawn(async move {
        loop {
            let worked = match state.db.due_broadcast().await {
                Ok(Some(b)) => match expand(&state, &b).await {
                    Ok(()) => true,
                    Err(e) => {
                        tracing::warn!(broadcast = %b.id, error = %e, "expanding a broadcast failed");
                        false
                    }
                },
                Ok(None) => false,
                Err(e) => {
                    tracing::warn!(error = %e, "looking for due broadcasts failed");
                    false
                }
            };
            if !worked {
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        }
    });
}

/// Writes the next batch of a broadcast.
async fn expand(state: &AppState, b: &BroadcastRow) -> Result<(), app::server::db::DbError> {
    let templates = state.db.templates(&b.workspace_id).await?;
    let Some(t) = templates
        .iter()
        .find(|t| t.name == b.template_name && t.language == b.template_language)
    else {
        return state
            .db
            .fail_broadcast(&b.id, "the template no longer exists")
            .await;
    };
    let vars = variables(t);
    let sources: BTreeMap<String, Source> = serde_json::from_str(&b.variables).unwrap_or_default();
    let audience: Audience = serde_json::from_str(&b.audience).unwrap_or_default();
    let contacts = state
        .db
        .contacts_in_id_order(
            &b.workspace_id,
            &audience.filter(),
            b.cursor.as_deref().unwrap_or(""),
            b.created_at,
            BATCH,
        )
        .await?;
    let done = (contacts.len() as i64) < BATCH;
    let cursor = contacts
        .last()
        .map(|c| c.id.clone())
        .or_else(|| b.cursor.clone())
        .unwrap_or_default();
    let recipients: Vec<Recipient> = contacts
        .iter()
        .map(|c| Recipient {
            contact_id: c.id.clone(),
            send: message_for(c, &b.template_name, &b.template_language, &vars, &sources),
        })
        .collect();
    if state
        .db
        .expand_broadcast(b, &recipients, &cursor, done)
        .await?
    {
        state.outbox.wake();
        state.events.wake(&b.workspace_id);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn template(format: Option<&str>, components: Value) -> TemplateRow {
        TemplateRow {
            id: "t".into(),
            waba_id: "w".into(),
            meta_template_id: None,
            name: "order_update".into(),
            language: "en_US".into(),
            category: None,
            status: "APPROVED".into(),
            parameter_format: format.map(str::to_string),
            components: components.to_string(),
            quality_score: None,
            rejected_reason: None,
            rejection_recommendation: None,
            updated_at: 0,
        }
    }

    fn contact(attrs: Value) -> ContactRow {
        ContactRow {
            id: "c".into(),
            wa_id: Some("6281234567890".into()),
            bsuid: None,
            phone: Some("+6281234567890".into()),
            name: Some("Ana".into()),
            profile_name: None,
            username: None,
            attributes: attrs.to_string(),
            created_at: 0,
            updated_at: 0,
        }
    }

    #[test]
    fn positional_variables_become_metas_parameters_from_contact_fields() {
        let t = template(
            None,
            json!([{"type": "HEADER", "format": "TEXT", "text": "Hi {{1}}"}, {"type": "BODY", "text": "Order {{1}} ships to {{2}}, {{1}}"}]),
        );
        let v = variables(&t);
        assert_eq!(
            v,
            Variables {
                named: false,
                header: vec!["1".into()],
                body: vec!["1".into(), "2".into()]
            }
        );
        let sources: BTreeMap<String, Source> = serde_json::from_value(json!({
            "header:1": "name", "1": "attr:order", "2": {"source": "attr:city", "fallback": "you"}})).unwrap();
        check_sources(&v, &sources).unwrap();
        let (content, graph) = message_for(
            &contact(json!({"order": "A-1"})),
            "order_update",
            "en_US",
            &v,
            &sources,
        )
        .unwrap();
        assert_eq!(graph["to"], "6281234567890");
        assert_eq!(
            content,
            json!({"name": "order_update", "language": {"code": "en_US"}, "components": [
            {"type": "header", "parameters": [{"type": "text", "text": "Ana"}]},
            {"type": "body", "parameters": [{"type": "text", "text": "A-1"}, {"type": "text", "text": "you"}]}]})
        );
        assert!(
            message_for(&contact(json!({})), "order_update", "en_US", &v, &sources)
                .unwrap_err()
                .contains("{{1}}")
        );
    }

    #[test]
    fn named_variables_carry_their_names_and_sources_are_checked() {
        let t = template(
            Some("NAMED"),
            json!([{"type": "BODY", "text": "Hi {{first_name}}"}]),
        );
        let v = variables(&t);
        assert!(v.named);
        let ok: BTreeMap<String, Source> =
            serde_json::from_value(json!({"first_name": "name"})).unwrap();
        let (content, _) = message_for(&contact(json!({})), "t", "en", &v, &ok).unwrap();
        assert_eq!(
            content["components"][0]["parameters"][0],
            json!({"type": "text", "parameter_name": "first_name", "text": "Ana"})
        );
        for bad in [
            json!({}),
            json!({"first_name": "email"}),
            json!({"first_name": "name", "x": "name"}),
        ] {
            let s: BTreeMap<String, Source> = serde_json::from_value(bad).unwrap();
            assert!(check_sources(&v, &s).is_err());
        }
    }

    #[test]
    fn tiers_name_their_daily_limits() {
        assert_eq!(tier_limit(Some("TIER_250")), Some(250));
        assert_eq!(tier_limit(Some("TIER_1K")), Some(1000));
        assert_eq!(tier_limit(Some("TIER_100K")), Some(100_000));
        assert_eq!(tier_limit(Some("TIER_UNLIMITED")), None);
        assert_eq!(tier_limit(None), None);
    }
}
