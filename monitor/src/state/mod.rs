//! State stage: what is on the wire now. The device table and the DHCP servers, both bounded.
pub mod devices;
pub mod dhcp_servers;
pub mod vendor;

pub use devices::{
    Change, Device, DeviceKey, DeviceState, DeviceTable, DeviceTableConfig, Lease, Source,
};
pub use dhcp_servers::{DhcpServers, Server, ServerKey};
