//! GET pages: which page a path is, and the enqueue form.

use actix_web::http::StatusCode;
use actix_web::HttpResponse;

use super::html::esc;
use super::{jobs, lanes, overview, Ctx};

/// The page at `path` (the part after the mount, without a trailing slash).
pub(crate) async fn get(ctx: &Ctx, path: &str) -> HttpResponse {
    match path {
        "" => overview::page(ctx).await,
        "/jobs" => jobs::list(ctx).await,
        "/lanes" => lanes::page(ctx).await,
        "/enqueue" if ctx.can_act() => {
            ctx.html("Enqueue a job", "enqueue", &enqueue_form(ctx, None))
        }
        "/enqueue" => ctx.error(
            StatusCode::FORBIDDEN,
            "read-only: enqueueing is not allowed",
        ),
        p => match p.strip_prefix("/jobs/") {
            Some(id) => jobs::detail(ctx, id).await,
            None => ctx.error(StatusCode::NOT_FOUND, "no such page"),
        },
    }
}

/// The enqueue form, filled with `values` (kind, args, priority, queue, delay) after a
/// refusal.
pub(crate) fn enqueue_form(ctx: &Ctx, values: Option<[&str; 5]>) -> String {
    let [kind, args, priority, queue, delay] = values.unwrap_or(["", "{}", "100", "default", "0"]);
    format!(
        "<form method=\"post\" action=\"{b}/enqueue\" class=\"stack\">{csrf}\
<label>Kind <input name=\"kind\" required maxlength=\"255\" value=\"{kind}\" placeholder=\"send_email\"></label>\
<label>Args (JSON) <textarea name=\"args\" rows=\"8\" spellcheck=\"false\">{args}</textarea></label>\
<div class=\"row\"><label>Priority <input name=\"priority\" type=\"number\" min=\"0\" max=\"32767\" value=\"{priority}\"></label>\
<label>Queue <input name=\"queue\" maxlength=\"63\" value=\"{queue}\"></label>\
<label>Delay (seconds) <input name=\"delay\" type=\"number\" min=\"0\" step=\"any\" value=\"{delay}\"></label></div>\
<p><button type=\"submit\" class=\"primary\">Enqueue</button></p></form>",
        b = esc(&ctx.base),
        csrf = ctx.csrf_field(),
        kind = esc(kind),
        args = esc(args),
        priority = esc(priority),
        queue = esc(queue),
        delay = esc(delay),
    )
}
