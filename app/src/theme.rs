//! Light/dark theme, kept in local storage (UI state only, as the privacy policy allows),
//! and the `data-hydrated` marker that tells tests the WASM client has taken over.

use leptos::prelude::*;

const STORAGE_KEY: &str = "qontak.theme";

/// Marks `<html data-hydrated="true">` once the client runs, and applies the stored theme.
pub fn mark_hydrated() {
    Effect::new(move |_| {
        if let Some(root) = document_element() {
            if let Some(theme) = stored_theme() {
                let _ = root.set_attribute("data-theme", &theme);
            }
            let _ = root.set_attribute("data-hydrated", "true");
        }
    });
}

fn document_element() -> Option<web_sys::Element> {
    web_sys::window()?.document()?.document_element()
}

fn stored_theme() -> Option<String> {
    web_sys::window()?
        .local_storage()
        .ok()??
        .get_item(STORAGE_KEY)
        .ok()?
}

/// The next theme after `current` (`None` means the system default, shown as light).
pub fn next_theme(current: Option<&str>) -> &'static str {
    match current {
        Some("dark") => "light",
        _ => "dark",
    }
}

/// A button that switches between light and dark.
#[component]
pub fn ThemeToggle() -> impl IntoView {
    let toggle = move |_| {
        let Some(root) = document_element() else {
            return;
        };
        let next = next_theme(root.get_attribute("data-theme").as_deref());
        let _ = root.set_attribute("data-theme", next);
        if let Some(Ok(Some(storage))) = web_sys::window().map(|w| w.local_storage()) {
            let _ = storage.set_item(STORAGE_KEY, next);
        }
    };
    view! {
        <button type="button" class="theme-toggle" aria-label="Switch light or dark theme" on:click=toggle>
            "◐"
        </button>
    }
}

#[cfg(test)]
mod tests {
    use super::next_theme;

    #[test]
    fn theme_alternates_between_dark_and_light() {
        assert_eq!(next_theme(None), "dark");
        assert_eq!(next_theme(Some("dark")), "light");
        assert_eq!(next_theme(Some("light")), "dark");
    }
}
