//! Every fixture cut at every byte offset. The rule: a frame ending inside a header that its
//! own type fields promise, and that the classifier needs, is counted in its class so far and
//! as malformed, and raises no event; a frame with all such headers is not malformed. Frames
//! shorter than an Ethernet header never reach XDP (BPF_PROG_TEST_RUN refuses them too).
use l2watch::capture::{KernelEvent, ProbeConfig, ProbeError};
use l2watch_tests::{
    fixtures, privileged,
    probe::{load, run},
};

#[test]
fn every_fixture_cut_at_every_offset() {
    privileged!();
    let mut failures = Vec::new();
    let mut cuts = 0usize;
    // One program for all cuts keeps this fast; bindings are made irrelevant by refresh 0.
    let cfg = ProbeConfig {
        refresh: std::time::Duration::ZERO,
        ..ProbeConfig::replay()
    };
    let mut probe = load(&cfg);
    let mut before = run(&mut probe, &[]);
    for f in fixtures::all() {
        let full = &f.frame.bytes;
        let full_malformed = f.counters.contains(&"malformed");
        for cut in 0..full.len() {
            let frame = &full[..cut];
            if cut < 14 {
                match probe.test_run(frame) {
                    Err(ProbeError::FrameTooShort(n)) if n == cut => {}
                    other => failures.push(format!("{} cut {cut}: {other:?}", f.name)),
                }
                continue;
            }
            cuts += 1;
            let after = run(&mut probe, &[frame]);
            let delta = |k: &str| after.count(k) - before.count(k);
            let ctx = format!("{} cut at {cut}/{}", f.name, full.len());
            if !after.all_passed() {
                failures.push(format!("{ctx}: verdict {:?}", after.verdicts));
            }
            if delta("frames") != 1 {
                failures.push(format!("{ctx}: frames +{}", delta("frames")));
            }
            let complete = cut >= f.frame.full_len;
            let want_malformed = !complete || full_malformed;
            if delta("malformed") != want_malformed as u64 {
                failures.push(format!(
                    "{ctx}: malformed +{}, expected {} (class needs {} bytes, headers {})",
                    delta("malformed"),
                    want_malformed as u8,
                    f.frame.class_len,
                    f.frame.full_len
                ));
            }
            // Once the class is known it is counted, cut or not.
            if cut >= f.frame.class_len {
                for class in ["arp", "dhcp"] {
                    if f.counters.contains(&class) && delta(class) != 1 {
                        failures.push(format!("{ctx}: {class} +{}", delta(class)));
                    }
                }
            }
            if !complete && !after.events.is_empty() {
                failures.push(format!("{ctx}: event from an incomplete frame"));
            }
            if complete {
                if after.events.len() != f.events.len() {
                    failures.push(format!(
                        "{ctx}: {} events, expected {}",
                        after.events.len(),
                        f.events.len()
                    ));
                }
                for ev in &after.events {
                    if let KernelEvent::Dhcp(d) = ev {
                        let bootp = cut - f.frame.class_len;
                        if d.bootp_len as usize != bootp || d.payload_len as usize != bootp {
                            failures.push(format!(
                                "{ctx}: DHCP event says {} / {} bytes, frame has {bootp}",
                                d.bootp_len, d.payload_len
                            ));
                        }
                    }
                }
            }
            before = after;
            before.events.clear();
        }
    }
    assert!(cuts > 7_000, "only {cuts} cuts exercised");
    assert!(
        failures.is_empty(),
        "{} failures:\n{}",
        failures.len(),
        failures.join("\n")
    );
}
