//! Webhooks to the product: Meta's envelope, the `X-Hub-Signature-256` signature, delivery with
//! retries, and the status sequence that follows an accepted send.

use std::sync::Arc;
use std::time::Duration;

use hmac::{Hmac, Mac};
use serde_json::{json, Map, Value};
use sha2::Sha256;

use crate::state::{now_rfc3339, now_unix, AppState, Number, Template};

/// How often a delivery is tried before it is given up (Meta retries for days; tests need
/// a bounded wait), and the first pause between tries (doubled each time).
const ATTEMPTS: u32 = 5;
const FIRST_BACKOFF: Duration = Duration::from_millis(100);

/// `sha256=<hex HMAC-SHA256 of body under secret>`, the `X-Hub-Signature-256` value.
pub fn signature(secret: &str, body: &[u8]) -> String {
    let mut mac =
        Hmac::<Sha256>::new_from_slice(secret.as_bytes()).expect("HMAC takes a key of any length");
    mac.update(body);
    format!("sha256={}", crate::hex(&mac.finalize().into_bytes()))
}

/// What became of one webhook post.
#[derive(Clone, Debug)]
pub struct Delivery {
    /// The product's last HTTP status, or `None` when it could not be reached.
    pub http_status: Option<u16>,
    pub attempts: u32,
    pub error: Option<String>,
}

impl Delivery {
    pub fn ok(&self) -> bool {
        self.http_status == Some(200)
    }
}

/// Signs and posts `body` to the webhook URL, retrying with backoff until the product answers
/// 200 or the tries run out, and records the outcome for `GET /_emulator/webhooks`.
pub async fn deliver(state: &AppState, field: &str, body: &Value) -> Delivery {
    let bytes = serde_json::to_vec(body).unwrap_or_default();
    let signature = signature(&state.config.app_secret, &bytes);
    let seq = state.with(|s| {
        let seq = s.next_seq();
        s.webhooks.push(json!({
            "seq": seq, "field": field, "body": body, "signature": signature,
            "attempts": 0, "http_status": null, "delivered": false, "error": null,
            "at": now_rfc3339(),
        }));
        seq
    });
    let mut delivery = Delivery {
        http_status: None,
        attempts: 0,
        error: None,
    };
    let mut backoff = FIRST_BACKOFF;
    while delivery.attempts < ATTEMPTS {
        if delivery.attempts > 0 {
            tokio::time::sleep(backoff).await;
            backoff *= 2;
        }
        delivery.attempts += 1;
        let result = state
            .http
            .post(&state.config.webhook_url)
            .header("content-type", "application/json")
            .header("x-hub-signature-256", &signature)
            .body(bytes.clone())
            .send()
            .await;
        match result {
            Ok(response) => {
                delivery.http_status = Some(response.status().as_u16());
                delivery.error = None;
                if delivery.ok() {
                    break;
                }
            }
            Err(e) => {
                delivery.http_status = None;
                delivery.error = Some(e.to_string());
            }
        }
    }
    if !delivery.ok() {
        tracing::warn!(
            field,
            attempts = delivery.attempts,
            status = ?delivery.http_status,
            error = ?delivery.error,
            url = %state.config.webhook_url,
            "webhook not acknowledged"
        );
    }
    state.with(|s| {
        if let Some(entry) = s
            .webhooks
            .iter_mut()
            .find(|w| w["seq"].as_u64() == Some(seq))
        {
            entry["attempts"] = json!(delivery.attempts);
            entry["http_status"] = json!(delivery.http_status);
            entry["delivered"] = json!(delivery.ok());
            entry["error"] = json!(delivery.error);
        }
    });
    delivery
}

/// Meta's envelope for a `messages` field change on `number`: `value` gets
/// `messaging_product` and `metadata`, then the given members (`contacts`, `messages`,
/// `statuses`, …).
pub fn messages_envelope(number: &Number, members: Map<String, Value>) -> Value {
    let mut value = Map::new();
    value.insert("messaging_product".into(), json!("whatsapp"));
    value.insert(
        "metadata".into(),
        json!({
            "display_phone_number": number.display_digits(),
            "phone_number_id": number.phone_number_id,
        }),
    );
    value.extend(members);
    json!({
        "object": "whatsapp_business_account",
        "entry": [{
            "id": number.waba_id,
            "changes": [{"value": value, "field": "messages"}],
        }],
    })
}

/// Who a status is about and how it is priced.
#[derive(Clone, Debug)]
pub struct StatusTarget {
    pub wamid: String,
    pub number: Number,
    pub recipient_id: Option<String>,
    pub recipient_user_id: Option<String>,
    pub biz_opaque_callback_data: Option<Value>,
    /// `service`, `utility`, `marketing` or `authentication`.
    pub category: String,
}

/// One `statuses[]` entry as Meta writes it. `pricing` accompanies `sent`, `delivered` and
/// `read`; failures carry `errors` instead. (`conversation` is omitted, as Meta does since v24
/// outside free-entry-point conversations.)
pub fn status_object(target: &StatusTarget, status: &str, errors: Option<&Value>) -> Value {
    let mut s = Map::new();
    s.insert("id".into(), json!(target.wamid));
    s.insert("status".into(), json!(status));
    s.insert("timestamp".into(), json!(now_unix().to_string()));
    if let Some(r) = &target.recipient_id {
        s.insert("recipient_id".into(), json!(r));
    }
    if let Some(r) = &target.recipient_user_id {
        s.insert("recipient_user_id".into(), json!(r));
    }
    if let Some(data) = &target.biz_opaque_callback_data {
        s.insert("biz_opaque_callback_data".into(), data.clone());
    }
    if status == "failed" {
        if let Some(errors) = errors {
            s.insert("errors".into(), errors.clone());
        }
    } else {
        s.insert(
            "pricing".into(),
            json!({
                "billable": true,
                "pricing_model": "PMP",
                "category": target.category,
                "type": "regular",
            }),
        );
        if let Some(errors) = errors {
            s.insert("errors".into(), errors.clone());
        }
    }
    Value::Object(s)
}

/// Posts one status webhook and notes it on the sent message.
pub async fn post_status(
    state: &AppState,
    target: &StatusTarget,
    status: &str,
    errors: Option<&Value>,
) -> Delivery {
    let statuses = vec![status_object(target, status, errors)];
    let mut members = Map::new();
    members.insert("statuses".into(), Value::Array(statuses));
    let body = messages_envelope(&target.number, members);
    state.with(|s| {
        if let Some(sent) = s.sent_mut(&target.wamid) {
            sent.statuses.push(status.to_string());
        }
    });
    deliver(state, "messages", &body).await
}

/// After an accepted send: the statuses in `plan`, each after the configured delay, in order
/// (each waits for the previous one's delivery, retries included).
pub fn spawn_statuses(
    state: Arc<AppState>,
    target: StatusTarget,
    plan: Vec<(String, Option<Value>)>,
) {
    tokio::spawn(async move {
        for (status, errors) in plan {
            tokio::time::sleep(state.config.status_delay).await;
            post_status(&state, &target, &status, errors.as_ref()).await;
        }
    });
}

/// A `message_template_status_update` change for `template`.
pub fn template_status_envelope(
    template: &Template,
    event: &str,
    extra: Map<String, Value>,
) -> Value {
    let id = template.field("id");
    // Meta writes the template id as a number in this webhook.
    let id_value = id
        .parse::<u64>()
        .map(|n| json!(n))
        .unwrap_or_else(|_| json!(id));
    let mut value = Map::new();
    value.insert("event".into(), json!(event));
    value.insert("message_template_id".into(), id_value);
    value.insert(
        "message_template_name".into(),
        json!(template.field("name")),
    );
    value.insert(
        "message_template_language".into(),
        json!(template.field("language")),
    );
    value.insert(
        "message_template_category".into(),
        json!(template.field("category")),
    );
    value.insert("reason".into(), json!("NONE"));
    value.extend(extra);
    json!({
        "object": "whatsapp_business_account",
        "entry": [{
            "id": template.waba_id,
            "time": now_unix(),
            "changes": [{"value": value, "field": "message_template_status_update"}],
        }],
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signature_is_metas_hex_hmac() {
        // HMAC-SHA256("key", "The quick brown fox jumps over the lazy dog")
        assert_eq!(
            signature("key", b"The quick brown fox jumps over the lazy dog"),
            "sha256=f7bc83f430538424b13298e6aa6fb143ef4d59a14946175997479dbc2d1a3cd8"
        );
    }

    #[test]
    fn failed_statuses_carry_errors_and_no_pricing() {
        let target = StatusTarget {
            wamid: "wamid.X".into(),
            number: Number::parse_spec("1,2,+1 555").unwrap(),
            recipient_id: Some("15550001".into()),
            recipient_user_id: None,
            biz_opaque_callback_data: Some(json!("order-7")),
            category: "service".into(),
        };
        let errors = json!([{"code": 131047}]);
        let failed = status_object(&target, "failed", Some(&errors));
        assert_eq!(failed["errors"], errors);
        assert!(failed.get("pricing").is_none());
        let sent = status_object(&target, "sent", None);
        assert_eq!(sent["pricing"]["pricing_model"], "PMP");
        assert_eq!(sent["biz_opaque_callback_data"], "order-7");
        assert_eq!(sent["recipient_id"], "15550001");
        assert!(sent["timestamp"].as_str().unwrap().parse::<i64>().is_ok());
    }
}
