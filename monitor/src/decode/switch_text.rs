//! Text from switch PDUs: names are printable ASCII in practice, but nothing on the wire
//! promises it, so what is not printable is shown as hex instead of being guessed at.
use crate::capture::hex;

/// Printable text as it is; anything else (control bytes, invalid UTF-8) as hex. Trailing
/// NULs, which some switches send, are dropped.
pub fn text(v: &[u8]) -> String {
    let v = match v.iter().rposition(|b| *b != 0) {
        Some(end) => &v[..=end],
        None => &[],
    };
    match std::str::from_utf8(v) {
        // Line breaks and tabs are text (system descriptions have them); other control
        // characters are not.
        Ok(s)
            if s.chars()
                .all(|c| !c.is_control() || matches!(c, '\n' | '\r' | '\t')) =>
        {
            s.to_string()
        }
        _ => hex(v),
    }
}

/// An id whose subtype `mac_subtype` means "a MAC address" (LLDP chassis 4, port 3).
pub fn id_text(subtype: u8, mac_subtype: u8, v: &[u8]) -> String {
    match <[u8; 6]>::try_from(v) {
        Ok(m) if subtype == mac_subtype => crate::model::Mac(m).to_string(),
        _ => text(v),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn printable_stays_text_the_rest_is_hex() {
        assert_eq!(text(b"Gi0/1\0\0"), "Gi0/1");
        assert_eq!(text(&[0x01, 0xff]), "01ff");
        assert_eq!(text(b"IOS\nCopyright"), "IOS\nCopyright");
        assert_eq!(id_text(4, 4, &[2, 0, 0, 0, 0, 1]), "02:00:00:00:00:01");
        assert_eq!(id_text(7, 4, b"abcdef"), "abcdef");
    }
}
