//! Graph calls for account administration: message templates, webhooks subscription, media.

use serde_json::Value;

use super::{Graph, GraphError};

impl Graph {
    /// `POST /{waba-id}/message_templates` with Meta's create body; answers `{id, status, category}`.
    pub async fn create_template(
        &self,
        token: &str,
        waba_id: &str,
        body: &Value,
    ) -> Result<Value, GraphError> {
        let res = self
            .http
            .post(self.url(&format!("{waba_id}/message_templates")))
            .bearer_auth(token)
            .json(body)
            .send()
            .await;
        Self::answer(res).await
    }

    /// `POST /{template-id}` with `category` and/or `components` (the whole set replaces the
    /// old one): Meta answers `{"success": true}` and reviews the template again.
    pub async fn edit_template(
        &self,
        token: &str,
        template_id: &str,
        body: &Value,
    ) -> Result<(), GraphError> {
        let res = self
            .http
            .post(self.url(template_id))
            .bearer_auth(token)
            .json(body)
            .send()
            .await;
        Self::answer(res).await.map(|_| ())
    }

    /// `DELETE /{phone-number-id}/contact_book?messaging_product=whatsapp&bsuid=…`: removes a
    /// business-scoped user from the number's contact book (a customer's erasure request).
    pub async fn delete_contact_book_entry(
        &self,
        token: &str,
        phone_number_id: &str,
        bsuid: &str,
    ) -> Result<(), GraphError> {
        let res = self
            .http
            .delete(self.url(&format!("{phone_number_id}/contact_book")))
            .query(&[("messaging_product", "whatsapp"), ("bsuid", bsuid)])
            .bearer_auth(token)
            .send()
            .await;
        Self::answer(res).await.map(|_| ())
    }

    /// `DELETE /{waba-id}/message_templates?name=…[&hsm_id=…]`: every language of a name, or the
    /// one template with that id.
    pub async fn delete_template(
        &self,
        token: &str,
        waba_id: &str,
        name: &str,
        hsm_id: Option<&str>,
    ) -> Result<(), GraphError> {
        let mut query = vec![("name", name)];
        if let Some(id) = hsm_id {
            query.push(("hsm_id", id));
        }
        let res = self
            .http
            .delete(self.url(&format!("{waba_id}/message_templates")))
            .query(&query)
            .bearer_auth(token)
            .send()
            .await;
        Self::answer(res).await.map(|_| ())
    }

    /// Meta's Resumable Upload API, for a media header's example: opens a session on the app
    /// (`POST /{app-id}/uploads`; `app` names the token's own app), then sends the bytes
    /// (`POST /upload:…` with `file_offset: 0`); answers the file handle (`h`).
    pub async fn upload_handle(
        &self,
        token: &str,
        app_id: &str,
        file_name: &str,
        mime: &str,
        bytes: Vec<u8>,
    ) -> Result<String, GraphError> {
        let length = bytes.len().to_string();
        let res = self
            .http
            .post(self.url(&format!("{app_id}/uploads")))
            .query(&[
                ("file_name", file_name),
                ("file_length", length.as_str()),
                ("file_type", mime),
            ])
            .bearer_auth(token)
            .send()
            .await;
        let session = Self::answer(res).await?;
        let id = session
            .get("id")
            .and_then(Value::as_str)
            .filter(|id| id.starts_with("upload:"))
            .ok_or_else(|| GraphError::Decode("no upload session id".into()))?;
        let res = self
            .http
            .post(self.url(id))
            .header("Authorization", format!("OAuth {token}"))
            .header("file_offset", "0")
            .body(bytes)
            .send()
            .await;
        let done = Self::answer(res).await?;
        done.get("h")
            .and_then(Value::as_str)
            .map(str::to_string)
            .ok_or_else(|| GraphError::Decode("no file handle (h) in the upload answer".into()))
    }

    /// `POST /{waba-id}/subscribed_apps`: subscribes our app to the WABA's webhooks.
    pub async fn subscribe_app(&self, token: &str, waba_id: &str) -> Result<(), GraphError> {
        let res = self
            .http
            .post(self.url(&format!("{waba_id}/subscribed_apps")))
            .bearer_auth(token)
            .send()
            .await;
        Self::answer(res).await.map(|_| ())
    }

    /// `GET /{waba-id}/subscribed_apps`: the apps subscribed to the WABA.
    pub async fn subscribed_apps(
        &self,
        token: &str,
        waba_id: &str,
    ) -> Result<Vec<Value>, GraphError> {
        let v = Self::answer(
            self.http
                .get(self.url(&format!("{waba_id}/subscribed_apps")))
                .bearer_auth(token)
                .send()
                .await,
        )
        .await?;
        Ok(v.get("data")
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default())
    }

    /// `DELETE /{waba-id}/subscribed_apps`: unsubscribes our app (workspace deletion).
    pub async fn unsubscribe_app(&self, token: &str, waba_id: &str) -> Result<(), GraphError> {
        let res = self
            .http
            .delete(self.url(&format!("{waba_id}/subscribed_apps")))
            .bearer_auth(token)
            .send()
            .await;
        Self::answer(res).await.map(|_| ())
    }

    /// `GET /{waba-id}/phone_numbers`: the ids of the phone numbers under a WABA (first page of
    /// up to 100, plenty for one account).
    pub async fn waba_phone_number_ids(
        &self,
        token: &str,
        waba_id: &str,
    ) -> Result<Vec<String>, GraphError> {
        let url = format!(
            "{}?fields=id&limit=100",
            self.url(&format!("{waba_id}/phone_numbers"))
        );
        let v = Self::answer(self.http.get(url).bearer_auth(token).send().await).await?;
        Ok(v.get("data")
            .and_then(Value::as_array)
            .map(|d| {
                d.iter()
                    .filter_map(|n| n.get("id").and_then(Value::as_str).map(str::to_string))
                    .collect()
            })
            .unwrap_or_default())
    }

    /// `DELETE /{media-id}`.
    pub async fn delete_media(&self, token: &str, media_id: &str) -> Result<(), GraphError> {
        let res = self
            .http
            .delete(self.url(media_id))
            .bearer_auth(token)
            .send()
            .await;
        Self::answer(res).await.map(|_| ())
    }
}
