//! State stage: what is on the wire now, all bounded: the device table (IPv4) and the IPv6
//! neighbours, the DHCP and DHCPv6 servers, the IPv6 routers, and the switch-facing view
//! (LLDP/CDP neighbours, spanning tree, LACP).
pub mod devices;
pub mod dhcp_health;
pub mod dhcp_servers;
pub mod dhcp_transactions;
pub mod dhcpv6_servers;
pub mod ipv6;
pub mod neighbours6;
pub mod routers;
pub mod switch;
pub mod vendor;

pub use dhcpv6_servers::{Dhcpv6Servers, Server6, Server6Key};
pub use ipv6::{Ipv6State, Ipv6StateConfig, Update6};
pub use neighbours6::{Addr6, AddrKind, Change6, Learnt, Neighbours6, Neighbours6Config, Station6};
pub use routers::{Router, RouterKey, Routers};
pub use switch::{SwitchState, SwitchStateConfig, SwitchUpdate};

pub use devices::{
    Boot, Change, Device, DeviceKey, DeviceState, DeviceTable, DeviceTableConfig, Lease, Source,
};
pub use dhcp_servers::{DhcpServers, Server, ServerKey};
