//! Google Identity Services on the sign-in page, in the browser: loads Google's client script,
//! renders its button and sends the credential it hands back to `POST /auth/google` as JSON.
//! Everything here runs in the WASM client (effects never run on the server); the server
//! renders the empty button container only.

use js_sys::{Function, Object, Reflect};
use leptos::html::Div;
use leptos::prelude::*;
use wasm_bindgen::closure::Closure;
use wasm_bindgen::{JsCast, JsValue};

use crate::api_client::Body;

/// Google's client library. The page's CSP admits exactly this script.
pub const GSI_CLIENT_URL: &str = "https://accounts.google.com/gsi/client";

/// What Google calls with each credential.
type CredentialCallback = Closure<dyn FnMut(JsValue)>;

/// The "Sign in with Google" button, and the reason when a sign-in is refused.
#[component]
pub fn GoogleButton(client_id: String) -> impl IntoView {
    let target = NodeRef::<Div>::new();
    let error = RwSignal::new(None::<String>);
    let busy = RwSignal::new(false);
    let id = client_id.clone();
    // Google calls `on_credential` for every credential. The effect keeps it as its value, so it
    // lives as long as the button, and it only ever exists in the browser: effects do not run
    // on the server, where a browser-only value would outlive the render on another thread.
    Effect::new(move |installed: Option<Option<CredentialCallback>>| {
        if let Some(Some(on_credential)) = installed {
            return Some(on_credential);
        }
        let div = target.get()?;
        let on_credential = CredentialCallback::new(move |response: JsValue| {
            credential_received(response, error, busy)
        });
        let function: Function = on_credential.as_ref().unchecked_ref::<Function>().clone();
        let element: JsValue = div.into();
        if let Err(e) = load_and_render(id.clone(), element, function, error) {
            show_error(error, &describe(&e, "Google sign-in could not start"));
        }
        Some(on_credential)
    });
    view! {
        <div class="google-signin-box">
            <div node_ref=target id="google-signin" class="google-signin" data-client-id=client_id></div>
            <Show when=move || busy.get()>
                <p class="muted" aria-live="polite">"Signing in…"</p>
            </Show>
            {move || error.get().map(|message| view! { <p class="error" role="alert">{message}</p> })}
        </div>
    }
}

fn show_error(error: RwSignal<Option<String>>, message: &str) {
    let _ = error.try_set(Some(message.to_string()));
}

fn describe(e: &JsValue, fallback: &str) -> String {
    e.as_string()
        .or_else(|| {
            Reflect::get(e, &"message".into())
                .ok()
                .and_then(|m| m.as_string())
        })
        .map(|m| format!("{fallback}: {m}"))
        .unwrap_or_else(|| fallback.to_string())
}

/// `window.google.accounts.id`, once Google's script has run.
fn google_id_api() -> Option<JsValue> {
    let window = web_sys::window()?;
    let mut value: JsValue = window.into();
    for key in ["google", "accounts", "id"] {
        value = Reflect::get(&value, &key.into()).ok()?;
        if value.is_undefined() || value.is_null() {
            return None;
        }
    }
    Some(value)
}

/// Renders the button now when Google's script is there, else adds the script and renders
/// when it has loaded.
fn load_and_render(
    client_id: String,
    element: JsValue,
    callback: Function,
    error: RwSignal<Option<String>>,
) -> Result<(), JsValue> {
    if google_id_api().is_some() {
        return render_button(&client_id, &element, &callback);
    }
    let document = web_sys::window()
        .and_then(|w| w.document())
        .ok_or_else(|| JsValue::from_str("no document"))?;
    let script: web_sys::HtmlScriptElement = document.create_element("script")?.unchecked_into();
    script.set_src(GSI_CLIENT_URL);
    script.set_async(true);
    let onload = Closure::once_into_js(move || {
        if let Err(e) = render_button(&client_id, &element, &callback) {
            show_error(error, &describe(&e, "Google sign-in could not start"));
        }
    });
    script.set_onload(Some(onload.unchecked_ref()));
    let onerror = Closure::once_into_js(move || {
        show_error(
            error,
            "Google's sign-in script could not be loaded; check the connection or a content blocker.",
        );
    });
    script.set_onerror(Some(onerror.unchecked_ref()));
    let parent = document
        .head()
        .map(JsValue::from)
        .or_else(|| document.body().map(JsValue::from))
        .ok_or_else(|| JsValue::from_str("no document head"))?;
    parent
        .unchecked_into::<web_sys::Node>()
        .append_child(&script)?;
    Ok(())
}

/// `google.accounts.id.initialize({client_id, callback, use_fedcm_for_prompt: true})`, then
/// `google.accounts.id.renderButton(element, {type: "standard", theme: "outline", size: "large"})`.
fn render_button(client_id: &str, element: &JsValue, callback: &Function) -> Result<(), JsValue> {
    let api = google_id_api().ok_or_else(|| JsValue::from_str("google.accounts.id is missing"))?;
    let config = Object::new();
    Reflect::set(&config, &"client_id".into(), &client_id.into())?;
    Reflect::set(&config, &"callback".into(), callback)?;
    Reflect::set(&config, &"use_fedcm_for_prompt".into(), &JsValue::TRUE)?;
    Reflect::get(&api, &"initialize".into())?
        .dyn_into::<Function>()?
        .call1(&api, &config)?;
    let options = Object::new();
    Reflect::set(&options, &"type".into(), &"standard".into())?;
    Reflect::set(&options, &"theme".into(), &"outline".into())?;
    Reflect::set(&options, &"size".into(), &"large".into())?;
    Reflect::get(&api, &"renderButton".into())?
        .dyn_into::<Function>()?
        .call2(&api, element, &options)?;
    Ok(())
}

/// Google's callback: `{credential, select_by}`. Posts the credential and follows the answer.
fn credential_received(response: JsValue, error: RwSignal<Option<String>>, busy: RwSignal<bool>) {
    let Some(credential) = Reflect::get(&response, &"credential".into())
        .ok()
        .and_then(|c| c.as_string())
    else {
        show_error(error, "Google did not hand back a credential; try again.");
        return;
    };
    let _ = error.try_set(None);
    let _ = busy.try_set(true);
    leptos::task::spawn_local(async move {
        match post_credential(credential).await {
            Ok(redirect) => {
                if let Some(window) = web_sys::window() {
                    let target = next_param().unwrap_or(redirect);
                    let _ = window.location().set_href(&target);
                }
            }
            Err(message) => {
                let _ = busy.try_set(false);
                show_error(error, &message);
            }
        }
    });
}

/// The page's `?next=` (where an invitation link sent the visitor to sign in), when it is a
/// path of ours.
fn next_param() -> Option<String> {
    let search = web_sys::window()?.location().search().ok()?;
    let raw = search
        .trim_start_matches('?')
        .split('&')
        .find_map(|pair| pair.strip_prefix("next="))?;
    let next: String = js_sys::decode_uri_component(raw).ok()?.into();
    (next.starts_with('/') && !next.starts_with("//") && !next.contains('\\')).then_some(next)
}

/// The `g_csrf_token` cookie, when Google's script set one: sent back in the body so the
/// server's double-submit check passes.
fn g_csrf_cookie() -> Option<String> {
    let document: web_sys::HtmlDocument = web_sys::window()?.document()?.dyn_into().ok()?;
    let cookies = document.cookie().ok()?;
    cookies
        .split(';')
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(name, _)| *name == "g_csrf_token")
        .map(|(_, value)| value.to_string())
}

/// `POST /auth/google` with `{"credential"}` as JSON; the path to go to, or the message to
/// show.
async fn post_credential(credential: String) -> Result<String, String> {
    let mut body = serde_json::json!({ "credential": credential });
    if let Some(csrf) = g_csrf_cookie() {
        body["g_csrf_token"] = csrf.into();
    }
    let answer = crate::api_client::request("POST", "/auth/google", Body::Json(body))
        .await
        .map_err(|e| format!("Sign-in failed: {}", e.message))?;
    // Only a path of ours: never follow an answer off-site.
    Ok(match answer.get("redirect").and_then(|r| r.as_str()) {
        Some(path) if path.starts_with('/') && !path.starts_with("//") => path.to_string(),
        _ => "/inbox".to_string(),
    })
}
