//! Inbound media: stored with the message as `pending`, fetched by a background queue
//! (`GET /{media-id}` for a fresh URL on every attempt, then the bytes with the bearer token),
//! checked against Meta's sha256, kept under the data folder, then `ready`. Failures retry with
//! backoff until Meta's media lifetime ends, then `failed` with the reason: never a message
//! whose attachment is lost without a trace.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use sha2::{Digest, Sha256};
use tokio::sync::Notify;

use super::crypto::{hex, SecretKey};
use super::db::Db;
use super::events::EventBus;
use super::graph::Graph;
use super::now_ms;

/// Where media bytes live. Files under the data folder today; object storage can implement it.
pub trait MediaStore: Send + Sync {
    fn put(&self, key: &str, bytes: &[u8]) -> std::io::Result<()>;
    fn get(&self, key: &str) -> std::io::Result<Vec<u8>>;
    fn delete(&self, key: &str) -> std::io::Result<()>;
}

/// Files under `<data dir>/media`.
pub struct FileStore {
    root: PathBuf,
}

impl FileStore {
    pub fn new(data_dir: &std::path::Path) -> FileStore {
        FileStore {
            root: data_dir.join("media"),
        }
    }

    fn path(&self, key: &str) -> std::io::Result<PathBuf> {
        // Keys are ours (workspace/id), but never let one climb out of the folder.
        if key
            .split('/')
            .any(|part| part.is_empty() || part == ".." || part == ".")
        {
            return Err(std::io::Error::new(
                std::io::ErrorKind::InvalidInput,
                "bad media key",
            ));
        }
        Ok(self.root.join(key))
    }
}

impl MediaStore for FileStore {
    fn put(&self, key: &str, bytes: &[u8]) -> std::io::Result<()> {
        let path = self.path(key)?;
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)?;
        }
        // Write then rename, so a crash never leaves a half file under the real name.
        let tmp = path.with_extension("part");
        std::fs::write(&tmp, bytes)?;
        std::fs::rename(tmp, path)
    }

    fn get(&self, key: &str) -> std::io::Result<Vec<u8>> {
        std::fs::read(self.path(key)?)
    }

    fn delete(&self, key: &str) -> std::io::Result<()> {
        match std::fs::remove_file(self.path(key)?) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e),
            _ => Ok(()),
        }
    }
}

/// How long Meta keeps inbound media, and how many attempts before giving up.
#[derive(Clone, Debug)]
pub struct MediaSettings {
    pub lifetime_ms: i64,
    pub max_attempts: i64,
    pub backoff_base_ms: i64,
}

impl Default for MediaSettings {
    fn default() -> Self {
        MediaSettings {
            lifetime_ms: 7 * 24 * 3600 * 1000,
            max_attempts: 40,
            backoff_base_ms: 2000,
        }
    }
}

/// Whether `bytes` match Meta's sha256, which webhooks write in base64 and the media node in hex.
pub fn sha256_matches(expected: &str, bytes: &[u8]) -> bool {
    let digest = Sha256::digest(bytes);
    let e = expected.trim();
    e.eq_ignore_ascii_case(&hex(&digest)) || e == STANDARD.encode(digest)
}

/// Wakes the media queue.
#[derive(Clone)]
pub struct MediaQueue {
    wake: Arc<Notify>,
}

impl MediaQueue {
    pub fn start(
        db: Db,
        graph: Graph,
        key: Arc<SecretKey>,
        store: Arc<dyn MediaStore>,
        bus: EventBus,
        settings: MediaSettings,
    ) -> MediaQueue {
        let wake = Arc::new(Notify::new());
        let w = wake.clone();
        tokio::spawn(async move {
            loop {
                tokio::select! {
                    _ = w.notified() => {}
                    _ = tokio::time::sleep(Duration::from_millis(500)) => {}
                }
                loop {
                    let due = match db.due_media(16).await {
                        Ok(d) => d,
                        Err(e) => {
                            tracing::warn!(error = %e, "reading the media queue failed");
                            break;
                        }
                    };
                    if due.is_empty() {
                        break;
                    }
                    for m in due {
                        fetch_one(&db, &graph, &key, store.as_ref(), &bus, &settings, m).await;
                    }
                }
            }
        });
        MediaQueue { wake }
    }

    pub fn wake(&self) {
        self.wake.notify_one();
    }
}

async fn fetch_one(
    db: &Db,
    graph: &Graph,
    key: &SecretKey,
    store: &dyn MediaStore,
    bus: &EventBus,
    settings: &MediaSettings,
    m: super::db::media::DueMedia,
) {
    let outcome: Result<(usize, String), String> = async {
        let token = key
            .decrypt(&m.access_token_enc)
            .map_err(|e| e.to_string())?;
        let info = graph
            .media_info(&token, &m.meta_media_id)
            .await
            .map_err(|e| e.to_string())?;
        let bytes = graph
            .download(&token, &info.url)
            .await
            .map_err(|e| e.to_string())?;
        let expected = m.sha256.clone().or(info.sha256.clone());
        if let Some(expected) = expected {
            if !sha256_matches(&expected, &bytes) {
                return Err("the downloaded bytes do not match Meta's sha256".to_string());
            }
        }
        let storage_key = format!("{}/{}", m.workspace_id, m.id);
        store
            .put(&storage_key, &bytes)
            .map_err(|e| format!("storing the file failed: {e}"))?;
        Ok((bytes.len(), storage_key))
    }
    .await;
    let now = now_ms();
    let result = match outcome {
        Ok((size, storage_key)) => db.media_ready(&m.id, size as i64, &storage_key).await,
        Err(reason) => {
            let attempts = m.attempts + 1;
            let expired =
                now - m.created_at >= settings.lifetime_ms || attempts >= settings.max_attempts;
            if expired {
                tracing::warn!(media = %m.id, %reason, "media download failed for good");
                db.media_failed(&m.id, &reason).await
            } else {
                let delay = settings
                    .backoff_base_ms
                    .saturating_mul(1 << (attempts - 1).clamp(0, 12))
                    .min(3_600_000);
                tracing::info!(media = %m.id, attempts, %reason, "media download will be retried");
                db.media_retry(&m.id, now + delay, &reason).await
            }
        }
    };
    match result {
        Ok(Some(workspace_id)) => {
            bus.wake(&workspace_id);
            let _ = db.notify_events(&workspace_id).await;
        }
        Ok(None) => {}
        Err(e) => tracing::warn!(media = %m.id, error = %e, "recording a media outcome failed"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sha256_is_accepted_in_hex_or_base64_and_refused_otherwise() {
        let bytes = b"hello";
        assert!(sha256_matches(
            "2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824",
            bytes
        ));
        assert!(sha256_matches(
            "LPJNul+wow4m6DsqxbninhsWHlwfp0JecwQzYpOLmCQ=",
            bytes
        ));
        assert!(!sha256_matches(
            "LPJNul+wow4m6DsqxbninhsWHlwfp0JecwQzYpOLmCQ=",
            b"other"
        ));
    }

    #[test]
    fn media_keys_cannot_leave_the_media_folder() {
        let dir = std::env::temp_dir().join(format!("qontak-media-{}", super::super::new_id()));
        let store = FileStore::new(&dir);
        store.put("ws/one", b"x").unwrap();
        assert_eq!(store.get("ws/one").unwrap(), b"x");
        assert!(store.put("../escape", b"x").is_err());
        assert!(store.get("ws/../../etc/passwd").is_err());
        store.delete("ws/one").unwrap();
        assert!(store.get("ws/one").is_err());
    }
}
