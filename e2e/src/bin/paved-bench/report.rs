//! The tables the bench prints and writes into BENCHMARKS.md.

use crate::measure::Spread;

/// "met" or "not met", after a target.
pub fn check(ok: bool) -> &'static str {
    if ok {
        "met"
    } else {
        "not met"
    }
}

/// A figure with one decimal place per `digits`, "–" when there is none (NaN).
pub fn num(v: f64, digits: usize) -> String {
    if v.is_finite() {
        format!("{v:.digits$}")
    } else {
        "–".into()
    }
}

/// Pure: `a / b` as a ratio cell ("1.23"), "–" when either is missing or b is 0.
pub fn ratio(a: f64, b: f64) -> String {
    if a.is_finite() && b.is_finite() && b != 0.0 {
        format!("{:.2}", a / b)
    } else {
        "–".into()
    }
}

/// A latency that may be censored: infinite for a claim not Ready within `cap` seconds.
pub fn capped(v: f64, cap: f64) -> String {
    if v == f64::INFINITY {
        format!("> {cap:.0}")
    } else {
        num(v, 2)
    }
}

/// p50 / p99 / max of some latencies (s), and how many were not Ready within `cap`.
pub fn arrival(s: &Spread, not_ready: usize, cap: f64) -> String {
    let v = format!(
        "{} / {} / {}",
        capped(s.p50, cap),
        capped(s.p99, cap),
        capped(s.max, cap)
    );
    if not_ready == 0 {
        v
    } else {
        format!(
            "{v} ({not_ready} of {} not Ready {cap:.0} s after the last create)",
            s.n
        )
    }
}

/// Several figures joined by " / ".
pub fn slash(v: &[f64], digits: usize) -> String {
    v.iter()
        .map(|x| num(*x, digits))
        .collect::<Vec<_>>()
        .join(" / ")
}

/// Drift repair times as "median / max (n of k back)"; a repair that did not come
/// back within the wait is counted out.
pub fn repairs(v: &[Option<f64>]) -> String {
    let back: Vec<f64> = v.iter().flatten().copied().collect();
    if back.is_empty() {
        return format!("none back (0 of {})", v.len());
    }
    let s = Spread::of(&back);
    let med = crate::measure::median(&back);
    if back.len() == v.len() {
        format!("{} / {}", num(med, 2), num(s.max, 2))
    } else {
        format!(
            "{} / {} ({} of {} back)",
            num(med, 2),
            num(s.max, 2),
            back.len(),
            v.len()
        )
    }
}

/// Pure: a paragraph's words in lines of at most `width` characters (a longer word alone
/// on its line).
pub fn wrap(text: &str, width: usize) -> String {
    let mut out = String::new();
    let mut line = 0;
    for word in text.split_whitespace() {
        let n = word.chars().count();
        if line > 0 && line + 1 + n > width {
            out.push('\n');
            line = 0;
        }
        if line > 0 {
            out.push(' ');
            line += 1;
        }
        out.push_str(word);
        line += n;
    }
    out
}

/// A table: a header, rows of cells, which columns are numbers (right-aligned).
pub struct Table {
    pub head: Vec<String>,
    pub numeric: Vec<bool>,
    pub rows: Vec<Vec<String>>,
}

impl Table {
    pub fn new(head: &[(&str, bool)]) -> Table {
        Table {
            head: head.iter().map(|(h, _)| h.to_string()).collect(),
            numeric: head.iter().map(|(_, n)| *n).collect(),
            rows: Vec::new(),
        }
    }

    /// A row; missing cells are empty, extra ones an error of the caller's.
    pub fn row<S: Into<String>>(&mut self, cells: impl IntoIterator<Item = S>) {
        let mut r: Vec<String> = cells.into_iter().map(Into::into).collect();
        assert!(r.len() <= self.head.len(), "a row wider than its table");
        r.resize(self.head.len(), String::new());
        self.rows.push(r);
    }

    /// GitHub markdown.
    pub fn markdown(&self) -> String {
        let line = |cells: &[String]| format!("| {} |\n", cells.join(" | "));
        let mut out = line(&self.head);
        let rule: Vec<String> = self
            .numeric
            .iter()
            .map(|n| if *n { "---:".into() } else { "---".into() })
            .collect();
        out.push_str(&format!("|{}|\n", rule.join("|")));
        for r in &self.rows {
            out.push_str(&line(r));
        }
        out
    }

    /// For the terminal: columns padded to their widest cell (numbers right-aligned),
    /// the first column cut at `first_width` characters.
    pub fn console(&self, first_width: usize) -> String {
        let cut = |s: &str, i: usize| -> String {
            if i == 0 && s.chars().count() > first_width {
                let mut t: String = s.chars().take(first_width - 1).collect();
                t.push('…');
                t
            } else {
                s.to_string()
            }
        };
        let all: Vec<Vec<String>> = std::iter::once(&self.head)
            .chain(&self.rows)
            .map(|r| r.iter().enumerate().map(|(i, c)| cut(c, i)).collect())
            .collect();
        let widths: Vec<usize> = (0..self.head.len())
            .map(|i| all.iter().map(|r| r[i].chars().count()).max().unwrap_or(0))
            .collect();
        let mut out = String::new();
        for r in &all {
            let cells: Vec<String> = r
                .iter()
                .enumerate()
                .map(|(i, c)| {
                    let pad = " ".repeat(widths[i] - c.chars().count());
                    if self.numeric[i] {
                        format!("{pad}{c}")
                    } else {
                        format!("{c}{pad}")
                    }
                })
                .collect();
            out.push_str(cells.join("  ").trim_end());
            out.push('\n');
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tables_render_as_markdown_and_padded_text() {
        let mut t = Table::new(&[("figure", false), ("Paved", true), ("target", false)]);
        t.row(["all Ready (s)", "17.8", "≤ 1.2, met"]);
        t.row(["p99 (s)", "0.5"]);
        assert_eq!(
            t.markdown(),
            "| figure | Paved | target |\n|---|---:|---|\n| all Ready (s) | 17.8 | ≤ 1.2, met |\n| p99 (s) | 0.5 |  |\n"
        );
        assert_eq!(
            t.console(80),
            "figure         Paved  target\nall Ready (s)   17.8  ≤ 1.2, met\np99 (s)          0.5\n"
        );
        assert_eq!(
            t.console(5).lines().nth(1).unwrap(),
            "all …   17.8  ≤ 1.2, met"
        );
    }

    #[test]
    fn paragraphs_wrap_at_their_width() {
        assert_eq!(wrap("aa bb  cc\ndd", 5), "aa bb\ncc dd");
        assert_eq!(wrap("a verylongword b", 4), "a\nverylongword\nb");
        assert_eq!(wrap("", 10), "");
    }

    #[test]
    #[should_panic(expected = "wider")]
    fn a_row_cannot_be_wider_than_its_table() {
        Table::new(&[("a", false)]).row(["1", "2"]);
    }

    #[test]
    fn cells_say_when_a_figure_is_missing() {
        assert_eq!(ratio(3.0, 2.0), "1.50");
        assert_eq!(ratio(3.0, 0.0), "–");
        assert_eq!(ratio(f64::NAN, 2.0), "–");
        assert_eq!(num(f64::NAN, 1), "–");
        assert_eq!(num(1.26, 1), "1.3");
        assert_eq!(slash(&[1.0, 2.26], 1), "1.0 / 2.3");
        assert_eq!(check(true), "met");
        assert_eq!(check(false), "not met");
        let s = Spread {
            n: 3,
            p50: 0.5,
            p99: 1.234,
            max: 2.0,
        };
        assert_eq!(arrival(&s, 0, 60.0), "0.50 / 1.23 / 2.00");
        let late = Spread::of(&[0.2, 0.3, f64::INFINITY]);
        assert_eq!(
            arrival(&late, 1, 60.0),
            "0.30 / > 60 / > 60 (1 of 3 not Ready 60 s after the last create)"
        );
    }

    #[test]
    fn drift_repairs_show_the_median_the_worst_and_what_never_came_back() {
        assert_eq!(repairs(&[Some(0.1), Some(0.3), Some(0.2)]), "0.20 / 0.30");
        assert_eq!(repairs(&[Some(0.1), None]), "0.10 / 0.10 (1 of 2 back)");
        assert_eq!(repairs(&[None, None]), "none back (0 of 2)");
    }
}
