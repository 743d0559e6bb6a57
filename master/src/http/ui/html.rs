//! HTML building blocks for the web UI: escaping, the page shell, tables
//! and usage bars. Pure string building; no I/O.

use std::fmt::Write;

/// `text` with `& < > " '` escaped, safe in element content and quoted
/// attribute values.
pub fn esc(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// `text` percent-encoded for a path segment or query value.
pub fn url(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for b in text.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                out.push(b as char)
            }
            b => {
                let _ = write!(out, "%{b:02X}");
            }
        }
    }
    out
}

/// Which master rendered a page, for its footer.
pub struct Answered {
    pub address: String,
    pub leader: bool,
}

/// A whole page: navigation, the live region (`body`, the part
/// `fragment` re-renders) and the footer naming the master.
pub fn page(title: &str, fragment: Option<&str>, body: &str, answered: &Answered) -> String {
    let live = match fragment {
        Some(f) => format!(" data-fragment=\"{}\"", esc(f)),
        None => String::new(),
    };
    let role = if answered.leader {
        "leader"
    } else {
        "follower"
    };
    format!(
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
         <title>{title} · Keel</title><link rel=\"icon\" href=\"data:,\">\
         <link rel=\"stylesheet\" href=\"/ui/assets/keel.css\">\
         <script src=\"/ui/assets/keel.js\" defer></script></head>\
         <body{live}><nav><a class=\"brand\" href=\"/\">Keel</a>\
         <a href=\"/\">Overview</a><a href=\"/ui/agents\">Agents</a>\
         <a href=\"/ui/frameworks\">Frameworks</a><a href=\"/ui/tasks\">Tasks</a>\
         <span id=\"live-state\" class=\"muted\"></span></nav>\
         <main id=\"live\">{body}</main>\
         <aside><h2>Recent changes</h2><ol id=\"recent\"></ol></aside>\
         <footer>answered by <span id=\"answered-by\">{addr}</span> ({role})</footer>\
         </body></html>\n",
        title = esc(title),
        addr = esc(&answered.address),
    )
}

/// A table: `head` cells and rows of already escaped cells, each row
/// with its element id.
pub fn table(id: &str, head: &[&str], rows: &[(String, Vec<String>)]) -> String {
    let mut out = format!("<table id=\"{}\"><thead><tr>", esc(id));
    for h in head {
        let _ = write!(out, "<th>{}</th>", esc(h));
    }
    out.push_str("</tr></thead><tbody>");
    for (row_id, cells) in rows {
        let _ = write!(out, "<tr id=\"{}\">", esc(row_id));
        for c in cells {
            let _ = write!(out, "<td>{c}</td>");
        }
        out.push_str("</tr>");
    }
    if rows.is_empty() {
        let _ = write!(
            out,
            "<tr class=\"empty\"><td colspan=\"{}\">none</td></tr>",
            head.len()
        );
    }
    out.push_str("</tbody></table>");
    out
}

/// A link to `href` (a path this module built) reading `text`.
pub fn link(href: &str, text: &str) -> String {
    format!("<a href=\"{}\">{}</a>", esc(href), esc(text))
}

/// A usage bar: `used` and `offered` of `total`.
pub fn bar(name: &str, used: f64, offered: f64, total: f64) -> String {
    let pct = |v: f64| match total > 0.0 {
        true => (v / total * 100.0).clamp(0.0, 100.0),
        false => 0.0,
    };
    let idle = (total - used - offered).max(0.0);
    format!(
        "<div class=\"bar-row\" id=\"bar-{n}\"><span class=\"bar-name\">{n}</span>\
         <div class=\"bar\"><span class=\"used\" style=\"width:{u:.1}%\"></span>\
         <span class=\"offered\" style=\"width:{o:.1}%\"></span></div>\
         <span class=\"bar-text\">used {used} · offered {offered} · idle {idle} · total {total}</span></div>",
        n = esc(name),
        u = pct(used),
        o = pct(offered),
        used = num(used),
        offered = num(offered),
        idle = num(idle),
        total = num(total),
    )
}

/// A number without trailing zeros (at most two decimals).
pub fn num(v: f64) -> String {
    let s = format!("{v:.2}");
    s.trim_end_matches('0').trim_end_matches('.').to_string()
}

/// Bytes in binary units.
pub fn bytes(b: u64) -> String {
    const UNITS: [&str; 6] = ["B", "KiB", "MiB", "GiB", "TiB", "PiB"];
    let mut v = b as f64;
    let mut unit = 0;
    while v >= 1024.0 && unit + 1 < UNITS.len() {
        v /= 1024.0;
        unit += 1;
    }
    format!("{} {}", num(v), UNITS[unit])
}

/// Unix seconds as `YYYY-MM-DD hh:mm:ss UTC`.
pub fn time(secs: f64) -> String {
    let secs = secs.max(0.0) as i64;
    let (days, rem) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02} {:02}:{:02}:{:02} UTC",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_markup_and_quotes() {
        assert_eq!(
            esc("<a href=\"x\">'&'</a>"),
            "&lt;a href=&quot;x&quot;&gt;&#39;&amp;&#39;&lt;/a&gt;"
        );
    }

    #[test]
    fn encodes_url_parts() {
        assert_eq!(url("a b/c?d"), "a%20b%2Fc%3Fd");
    }

    #[test]
    fn formats_numbers_bytes_and_times() {
        assert_eq!(num(2.0), "2");
        assert_eq!(num(0.25), "0.25");
        assert_eq!(bytes(3 << 30), "3 GiB");
        assert_eq!(time(0.0), "1970-01-01 00:00:00 UTC");
        assert_eq!(time(1_700_000_000.0), "2023-11-14 22:13:20 UTC");
    }

    #[test]
    fn bars_clamp_to_the_total() {
        let b = bar("cpus", 3.0, 2.0, 4.0);
        assert!(b.contains("width:75.0%"), "{b}");
        assert!(b.contains("idle 0"), "{b}");
    }
}
