//! Reads Prometheus text exposition exactly: a sample matches a query only when its metric
//! name is the one asked for and every label asked for has exactly the value asked for, so
//! `interface="l2w1"` never matches `interface="l2w12"` and `vlan="1"` never `vlan="10"`.

/// One parsed sample line: name, labels, value.
#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    pub name: String,
    pub labels: Vec<(String, String)>,
    pub value: f64,
}

/// Every sample in `text` (comments and blank lines skipped; a line that does not parse
/// panics with the line, since the exporter must not write one).
pub fn samples(text: &str) -> Vec<Sample> {
    text.lines()
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(|l| parse_line(l).unwrap_or_else(|| panic!("not an exposition line: {l:?}")))
        .collect()
}

fn parse_line(line: &str) -> Option<Sample> {
    let (head, value) = line.rsplit_once(' ')?;
    let value = value.parse().ok()?;
    let (name, labels) = match head.split_once('{') {
        None => (head.to_string(), Vec::new()),
        Some((name, rest)) => (name.to_string(), parse_labels(rest.strip_suffix('}')?)?),
    };
    Some(Sample {
        name,
        labels,
        value,
    })
}

fn parse_labels(mut s: &str) -> Option<Vec<(String, String)>> {
    let mut out = Vec::new();
    while !s.is_empty() {
        let (key, rest) = s.split_once("=\"")?;
        let mut value = String::new();
        let mut chars = rest.char_indices();
        let end = loop {
            let (i, c) = chars.next()?;
            match c {
                '\\' => value.push(match chars.next()?.1 {
                    'n' => '\n',
                    c => c,
                }),
                '"' => break i,
                c => value.push(c),
            }
        };
        out.push((key.to_string(), value));
        s = rest[end + 1..]
            .strip_prefix(',')
            .unwrap_or(&rest[end + 1..]);
    }
    Some(out)
}

impl Sample {
    fn matches(&self, metric: &str, labels: &[(&str, &str)]) -> bool {
        self.name == metric
            && labels
                .iter()
                .all(|(k, v)| self.labels.iter().any(|(lk, lv)| lk == k && lv == v))
    }
}

/// The value of the one sample of `metric` with exactly these label values (others free);
/// None when there is none. Panics when several match: the query is ambiguous.
pub fn sample(text: &str, metric: &str, labels: &[(&str, &str)]) -> Option<f64> {
    let found: Vec<Sample> = samples(text)
        .into_iter()
        .filter(|s| s.matches(metric, labels))
        .collect();
    assert!(
        found.len() <= 1,
        "{metric} {labels:?} matches {} samples: {found:?}",
        found.len()
    );
    found.first().map(|s| s.value)
}

/// The sum over every sample of `metric` with these label values (0 when there is none).
pub fn sum(text: &str, metric: &str, labels: &[(&str, &str)]) -> f64 {
    samples(text)
        .iter()
        .filter(|s| s.matches(metric, labels))
        .map(|s| s.value)
        .sum()
}

/// `k=v` pairs of a log field such as the counters line's `stats`, exactly.
pub fn pairs(s: &str) -> Vec<(String, String)> {
    s.split_whitespace()
        .filter_map(|p| p.split_once('='))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_match_exactly() {
        let text = "# HELP x y\nm{interface=\"l2w12\",vlan=\"10\"} 5\nm{interface=\"l2w1\",vlan=\"1\"} 2\nn 7\nq{a=\"x\\\"y\"} 1\n";
        assert_eq!(sample(text, "m", &[("interface", "l2w1")]), Some(2.0));
        assert_eq!(sample(text, "m", &[("vlan", "10")]), Some(5.0));
        assert_eq!(sample(text, "m", &[("vlan", "100")]), None);
        assert_eq!(sample(text, "n", &[]), Some(7.0));
        assert_eq!(sample(text, "q", &[("a", "x\"y")]), Some(1.0));
        assert_eq!(sum(text, "m", &[]), 7.0);
        assert_eq!(
            pairs("arp_suppressed=50 dhcp_events_sent=2")[0],
            ("arp_suppressed".into(), "50".into())
        );
    }
}
