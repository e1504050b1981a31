// `sqlx::migrate!` embeds the migration files; without this a new file would not trigger a rebuild.
fn main() {
    println!("cargo:rerun-if-changed=../migrations");
}
