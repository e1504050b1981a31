//! Message templates: Meta's rules (shared by the browser and the server), the WhatsApp-style
//! preview, and the admins' Templates page.

pub mod api;
pub mod page;
pub mod preview;
pub mod validate;

pub use page::TemplatesPage;
