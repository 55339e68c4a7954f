//! Which tenants a publish channel serves, and the SKUs several of them hold where a channel
//! knows listings by SKU alone.

use catalog_core::{Sku, TenantId};

/// A publish channel and the tenants whose item changes it gets.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChannelRoute {
    pub name: String,
    /// `None`: every tenant.
    pub tenants: Option<std::collections::BTreeSet<TenantId>>,
}

impl ChannelRoute {
    pub fn all(name: impl Into<String>) -> Self {
        Self { name: name.into(), tenants: None }
    }

    pub fn for_tenants(name: impl Into<String>, tenants: impl IntoIterator<Item = TenantId>) -> Self {
        Self { name: name.into(), tenants: Some(tenants.into_iter().collect()) }
    }

    /// Whether item changes of `tenant` are published on this channel.
    pub fn serves(&self, tenant: &TenantId) -> bool {
        self.tenants.as_ref().is_none_or(|tenants| tenants.contains(tenant))
    }
}

/// A SKU that items of several tenants a channel serves hold. On a channel whose listings are
/// known by SKU alone (a marketplace seller account), its listing would be all of theirs at
/// once: each tenant's quantity would overwrite the others' (decision 0056).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SharedSku {
    pub sku: Sku,
    /// The tenants whose items hold it, in byte order: at least two.
    pub tenants: Vec<TenantId>,
}
