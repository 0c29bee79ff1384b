//! Builds test frames byte by byte: Ethernet, stacked VLAN tags, ARP, IPv4 (with options and
//! fragments), UDP, BOOTP/DHCP, IPv6. Each built frame also says how many bytes the classifier
//! needs to know its class and to parse it fully, for the truncation tests.

pub const BROADCAST: [u8; 6] = [0xff; 6];
pub const TPID_8021Q: u16 = 0x8100;
pub const TPID_8021AD: u16 = 0x88a8;
pub const TPID_QINQ: u16 = 0x9100;

/// A frame and the byte counts the classifier's malformed rule depends on.
#[derive(Debug, Clone)]
pub struct Built {
    pub bytes: Vec<u8>,
    /// Bytes needed before the class (ARP / DHCP / other) is known.
    pub class_len: usize,
    /// Bytes needed for the class's headers to be complete; shorter is malformed.
    pub full_len: usize,
}

/// Ethernet header plus VLAN tags, in order outermost first.
#[derive(Debug, Clone)]
pub struct L2 {
    pub dst: [u8; 6],
    pub src: [u8; 6],
    /// (TPID, VID) pairs.
    pub tags: Vec<(u16, u16)>,
}

impl L2 {
    pub fn new(src: [u8; 6], dst: [u8; 6]) -> Self {
        L2 {
            dst,
            src,
            tags: Vec::new(),
        }
    }

    pub fn tag(mut self, tpid: u16, vid: u16) -> Self {
        self.tags.push((tpid, vid));
        self
    }

    /// The Ethernet header (and tags) of a frame of `ether_type`.
    pub fn bytes(&self, ether_type: u16) -> Vec<u8> {
        let mut v = Vec::with_capacity(64);
        v.extend_from_slice(&self.dst);
        v.extend_from_slice(&self.src);
        for (tpid, vid) in &self.tags {
            v.extend_from_slice(&tpid.to_be_bytes());
            // PCP 3 to check the classifier masks it away.
            v.extend_from_slice(&((3u16 << 13) | vid).to_be_bytes());
        }
        v.extend_from_slice(&ether_type.to_be_bytes());
        v
    }
}

/// An Ethernet/IPv4 ARP frame.
pub fn arp(l2: &L2, op: u16, sha: [u8; 6], spa: [u8; 4], tha: [u8; 6], tpa: [u8; 4]) -> Built {
    let mut v = l2.bytes(0x0806);
    let class_len = v.len();
    v.extend_from_slice(&1u16.to_be_bytes());
    v.extend_from_slice(&0x0800u16.to_be_bytes());
    v.push(6);
    v.push(4);
    v.extend_from_slice(&op.to_be_bytes());
    v.extend_from_slice(&sha);
    v.extend_from_slice(&spa);
    v.extend_from_slice(&tha);
    v.extend_from_slice(&tpa);
    let full_len = v.len();
    Built {
        bytes: v,
        class_len,
        full_len,
    }
}

/// IPv4 header fields that fixtures vary.
#[derive(Debug, Clone)]
pub struct Ip {
    pub src: [u8; 4],
    pub dst: [u8; 4],
    pub proto: u8,
    /// Option bytes (padded to a multiple of 4 with NOPs).
    pub options: Vec<u8>,
    /// Fragment offset in 8-byte units, and the more-fragments flag.
    pub frag_offset: u16,
    pub more_fragments: bool,
}

impl Ip {
    pub fn udp(src: [u8; 4], dst: [u8; 4]) -> Self {
        Ip {
            src,
            dst,
            proto: 17,
            options: Vec::new(),
            frag_offset: 0,
            more_fragments: false,
        }
    }
}

fn ipv4_header(ip: &Ip, payload_len: usize) -> Vec<u8> {
    let mut opts = ip.options.clone();
    while !opts.len().is_multiple_of(4) {
        opts.push(1);
    }
    let ihl = 5 + opts.len() / 4;
    let mut h = vec![(4 << 4) | ihl as u8, 0];
    h.extend_from_slice(&((ihl * 4 + payload_len) as u16).to_be_bytes());
    h.extend_from_slice(&0x1234u16.to_be_bytes());
    let flags = if ip.more_fragments { 0x2000 } else { 0 } | (ip.frag_offset & 0x1fff);
    h.extend_from_slice(&flags.to_be_bytes());
    h.push(64);
    h.push(ip.proto);
    h.extend_from_slice(&[0, 0]);
    h.extend_from_slice(&ip.src);
    h.extend_from_slice(&ip.dst);
    h.extend_from_slice(&opts);
    // A real checksum: a bridge with br_netfilter loaded drops IPv4 frames without one.
    let sum = h
        .chunks(2)
        .map(|w| u32::from(u16::from_be_bytes([w[0], w[1]])))
        .sum::<u32>();
    let folded = (sum & 0xffff) + (sum >> 16);
    let folded = (folded & 0xffff) + (folded >> 16);
    h[10..12].copy_from_slice(&(!(folded as u16)).to_be_bytes());
    h
}

/// An IPv4/UDP frame. `class_len` counts up to the UDP header; `full_len` adds `needs`
/// payload bytes (236 for BOOTP).
pub fn udp(l2: &L2, ip: &Ip, sport: u16, dport: u16, payload: &[u8], needs: usize) -> Built {
    let mut v = l2.bytes(0x0800);
    let udp_len = 8 + payload.len();
    let iph = ipv4_header(ip, udp_len);
    v.extend_from_slice(&iph);
    v.extend_from_slice(&sport.to_be_bytes());
    v.extend_from_slice(&dport.to_be_bytes());
    v.extend_from_slice(&(udp_len as u16).to_be_bytes());
    v.extend_from_slice(&[0, 0]);
    let class_len = v.len();
    v.extend_from_slice(payload);
    Built {
        bytes: v,
        class_len,
        full_len: class_len + needs,
    }
}

/// An IPv4 frame with any protocol and payload (TCP etc.): the classifier needs the fixed
/// 20-byte header only.
pub fn ipv4_other(l2: &L2, ip: &Ip, payload: &[u8]) -> Built {
    let mut v = l2.bytes(0x0800);
    let start = v.len();
    v.extend_from_slice(&ipv4_header(ip, payload.len()));
    v.extend_from_slice(payload);
    Built {
        bytes: v,
        class_len: start,
        full_len: start + 20,
    }
}

/// An IPv6 frame with a UDP or ICMPv6 payload; never ARP or DHCPv4.
pub fn ipv6(l2: &L2, next_header: u8, payload: &[u8]) -> Built {
    let mut v = l2.bytes(0x86dd);
    let class_len = v.len();
    v.extend_from_slice(&[0x60, 0, 0, 0]);
    v.extend_from_slice(&(payload.len() as u16).to_be_bytes());
    v.push(next_header);
    v.push(255);
    v.extend_from_slice(&[0xfe, 0x80, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1]);
    v.extend_from_slice(&[0xff, 0x02, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0, 2]);
    v.extend_from_slice(payload);
    Built {
        bytes: v,
        class_len,
        full_len: class_len,
    }
}

/// A BOOTP message: op, xid, chaddr, addresses, then magic cookie and `options` when
/// `dhcp` is true (a plain BOOTP message otherwise).
#[derive(Debug, Clone)]
pub struct Bootp {
    pub op: u8,
    pub xid: u32,
    pub chaddr: [u8; 6],
    pub ciaddr: [u8; 4],
    pub yiaddr: [u8; 4],
    pub siaddr: [u8; 4],
    pub giaddr: [u8; 4],
    pub dhcp: bool,
    pub options: Vec<u8>,
}

impl Bootp {
    /// A DHCP message of `msg_type` with option 53 first, then `extra` options and End.
    pub fn dhcp(op: u8, xid: u32, chaddr: [u8; 6], msg_type: u8, extra: &[u8]) -> Self {
        let mut options = vec![53, 1, msg_type];
        options.extend_from_slice(extra);
        options.push(255);
        Bootp {
            op,
            xid,
            chaddr,
            ciaddr: [0; 4],
            yiaddr: [0; 4],
            siaddr: [0; 4],
            giaddr: [0; 4],
            dhcp: true,
            options,
        }
    }

    pub fn bytes(&self) -> Vec<u8> {
        let mut v = vec![self.op, 1, 6, 0];
        v.extend_from_slice(&self.xid.to_be_bytes());
        v.extend_from_slice(&[0, 0, 0x80, 0]);
        v.extend_from_slice(&self.ciaddr);
        v.extend_from_slice(&self.yiaddr);
        v.extend_from_slice(&self.siaddr);
        v.extend_from_slice(&self.giaddr);
        let mut ch = [0u8; 16];
        ch[..6].copy_from_slice(&self.chaddr);
        v.extend_from_slice(&ch);
        v.extend_from_slice(&[0u8; 64 + 128]);
        if self.dhcp {
            v.extend_from_slice(&[0x63, 0x82, 0x53, 0x63]);
        }
        v.extend_from_slice(&self.options);
        // Pad to the classic 300-byte minimum BOOTP size, as clients do.
        while v.len() < 300 {
            v.push(0);
        }
        v
    }
}

/// A DHCP frame: client->server (68->67) for op 1, server->client (67->68) for op 2.
pub fn dhcp(l2: &L2, ip: &Ip, bootp: &Bootp) -> Built {
    let (sport, dport) = if bootp.op == 1 { (68, 67) } else { (67, 68) };
    udp(l2, ip, sport, dport, &bootp.bytes(), 236)
}
