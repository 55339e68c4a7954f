//! Which channels write one seller account's listings (decision 0056). A marketplace knows an
//! account's listings by SKU alone, so two channels on one account (one per tenant, say one
//! sending single updates and one sending feeds) write the same listing for a SKU their
//! tenants share: each channel is told the others, and writes no such SKU. Two that serve a
//! tenant in common and list a SKU in common are refused (`apart`).

use std::collections::BTreeMap;

use catalog_core::{Listings, Sku};
use catalog_publish::AccountChannel;
use catalog_store::ChannelRoute;

use super::{AdapterSettings, ChannelsError, HttpChannel};

/// Whether two channels' adapters write the same listings: the same platform host and seller
/// account (and, where a quantity belongs to a location or ship node, the same one).
/// Credentials are compared, never shown.
pub(super) fn same_account(a: &AdapterSettings, b: &AdapterSettings) -> bool {
    match (a, b) {
        (AdapterSettings::Shopify(a), AdapterSettings::Shopify(b)) => {
            a.base_url == b.base_url && a.location_id == b.location_id
        }
        (AdapterSettings::Amazon(a), AdapterSettings::Amazon(b)) => {
            a.base_url == b.base_url && a.seller_id == b.seller_id && a.marketplace_id == b.marketplace_id
        }
        (AdapterSettings::Walmart(a), AdapterSettings::Walmart(b)) => {
            a.base_url == b.base_url && a.client_id == b.client_id && a.ship_node == b.ship_node
        }
        (AdapterSettings::Ebay(a), AdapterSettings::Ebay(b)) => {
            a.base_url == b.base_url && a.refresh_token == b.refresh_token
        }
        (AdapterSettings::MercadoLibre(a), AdapterSettings::MercadoLibre(b)) => {
            let same_file = a.refresh_token_file.is_some() && a.refresh_token_file == b.refresh_token_file;
            a.base_url == b.base_url && (same_file || a.refresh_token == b.refresh_token)
        }
        // The storefront's requests name the tenant: no listing of it is shared.
        _ => false,
    }
}

/// Whether two channels' adapters spend one rate budget of the platform, so that a 429 or a
/// refusal met by either holds both: a Shopify shop's cost bucket belongs to the app and the
/// store (its access token and host), whatever the location; Walmart's token bucket to the
/// seller's client, whatever the ship node; eBay's, Mercado Libre's and Amazon's to the
/// account, as [`same_account`]. A hold shared is a refusal shared too: only channels
/// presenting the same credentials share one, and Amazon's marketplaces are kept apart,
/// since its 403 `Unauthorized` may concern one marketplace alone (a seller not registered
/// there), which would hold the others after each of its sends.
pub(super) fn same_budget(a: &AdapterSettings, b: &AdapterSettings) -> bool {
    match (a, b) {
        (AdapterSettings::Shopify(a), AdapterSettings::Shopify(b)) => {
            a.base_url == b.base_url && a.access_token == b.access_token
        }
        (AdapterSettings::Walmart(a), AdapterSettings::Walmart(b)) => {
            a.base_url == b.base_url && a.client_id == b.client_id && a.client_secret == b.client_secret
        }
        _ => same_account(a, b),
    }
}

/// Tells each channel the others on its seller account (`ChannelConfig::shares_account_with`),
/// once their listings are found to agree (one SKU one listing, one listing one SKU, so a SKU
/// stands for its listing across them) and no tenant's SKU is written by both.
pub(super) fn link_accounts(channels: &mut [HttpChannel]) -> Result<(), ChannelsError> {
    let mut links: Vec<Vec<AccountChannel>> = vec![Vec::new(); channels.len()];
    for (i, channel) in channels.iter().enumerate() {
        for (j, other) in channels.iter().enumerate().filter(|(j, _)| *j != i) {
            if !same_account(&channel.adapter, &other.adapter) {
                continue;
            }
            if i < j {
                one_refresh_token(&channel.adapter, &other.adapter)
                    .and_then(|()| {
                        agree(&channel.config.rules.listings, &other.config.rules.listings)
                            .map_err(|error| format!("{error}: give them listings that agree"))
                    })
                    .and_then(|()| {
                        apart(channel, other).map_err(|both| {
                            format!(
                                "{both}: each would send its own quantity to the same listing, the last to land \
                                 winning, and read the other's as drift; give them \"tenants\" apart, or listings \
                                 apart"
                            )
                        })
                    })
                    .map_err(|error| ChannelsError::SharedAccount {
                        first: channel.config.name.clone(),
                        second: other.config.name.clone(),
                        error,
                    })?;
            }
            links[i].push(AccountChannel {
                name: other.config.name.clone(),
                listings: other.config.rules.listings.clone(),
            });
        }
    }
    for (channel, shares) in channels.iter_mut().zip(links) {
        if !shares.is_empty() {
            let names: Vec<&str> = shares.iter().map(|other| other.name.as_str()).collect();
            tracing::info!(
                channel = %channel.config.name,
                shares_account_with = %names.join(","),
                "channels write one seller account's listings: a SKU items of two of their tenants hold is written by none"
            );
        }
        channel.config.shares_account_with = shares;
    }
    Ok(())
}

/// Whether two channels on one account can both keep its refresh token. Mercado Libre spends
/// a refresh token on its first use: two channels each holding the configured one would
/// refresh with it in turn, and the second would be refused for good (`invalid_grant`) once
/// the first had spent it. Kept in one `refresh_token_file`, each refresh takes the token the
/// other rotated (`TokenCache::keeping_refresh_token_in`).
fn one_refresh_token(a: &AdapterSettings, b: &AdapterSettings) -> Result<(), String> {
    match (a, b) {
        (AdapterSettings::MercadoLibre(a), AdapterSettings::MercadoLibre(b))
            if a.refresh_token_file.is_none() || a.refresh_token_file != b.refresh_token_file =>
        {
            Err("Mercado Libre spends their refresh token on its first use, so each would spend the other's: give \
                 both the same refresh_token_file"
                .to_owned())
        }
        _ => Ok(()),
    }
}

/// Whether two channels on one account write no listing for the same tenant, or what they
/// would both write: a tenant both serve, and a SKU both list (every SKU when both list by
/// SKU). Their listings agree already (`agree`). Before, an Amazon channel of single updates
/// and one of feeds for the same tenant both sent every SKU, and a feed taken up to 20
/// minutes later set a listing back past a newer update (found by review).
fn apart(a: &HttpChannel, b: &HttpChannel) -> Result<(), String> {
    let Some(tenant) = tenant_of_both(&a.route, &b.route) else { return Ok(()) };
    match (&a.config.rules.listings, &b.config.rules.listings) {
        (Listings::Mapped(a), Listings::Mapped(b)) => match a.keys().find(|sku| b.contains_key(*sku)) {
            Some(sku) => Err(format!("both serve {tenant} and list SKU {sku}")),
            None => Ok(()),
        },
        _ => Err(format!("both serve {tenant} and list every SKU by SKU")),
    }
}

/// A tenant both routes serve, named (`every tenant` when neither names its tenants).
fn tenant_of_both(a: &ChannelRoute, b: &ChannelRoute) -> Option<String> {
    match (&a.tenants, &b.tenants) {
        (None, None) => Some("every tenant".to_owned()),
        (Some(some), None) | (None, Some(some)) => some.first().map(|tenant| format!("tenant {tenant}")),
        (Some(a), Some(b)) => a.intersection(b).next().map(|tenant| format!("tenant {tenant}")),
    }
}

/// Whether two channels' listings on one account agree, or how they do not. Both by SKU
/// agree; a map and listing by SKU do not (a mapped listing id may be another SKU there);
/// two maps agree when no SKU is two listings and no listing two SKUs.
fn agree(a: &Listings, b: &Listings) -> Result<(), String> {
    let (a, b) = match (a, b) {
        (Listings::BySku, Listings::BySku) => return Ok(()),
        (Listings::Mapped(a), Listings::Mapped(b)) => (a, b),
        _ => return Err("one maps SKUs to listings while the other lists them by SKU".to_owned()),
    };
    let mut sku_of: BTreeMap<&str, &Sku> = a.iter().map(|(sku, listing)| (listing.as_str(), sku)).collect();
    for (sku, listing) in b {
        if let Some(there) = a.get(sku).filter(|there| *there != listing) {
            return Err(format!("SKU {sku} is listing {there} in one and {listing} in the other"));
        }
        if let Some(other) = sku_of.insert(listing, sku).filter(|other| *other != sku) {
            return Err(format!("listing {listing} is SKU {other} in one and {sku} in the other"));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use catalog_publish::marketplace::amazon::AmazonConfig;
    use catalog_publish::{ChannelConfig, Secret};
    use catalog_store::ChannelRoute;

    use super::*;

    fn amazon(name: &str, seller: &str, marketplace: &str) -> HttpChannel {
        let tenant = catalog_core::TenantId::parse(name).expect("a channel's name is a tenant id here");
        amazon_for(name, seller, marketplace, ChannelRoute::for_tenants(name, [tenant]))
    }

    fn amazon_for(name: &str, seller: &str, marketplace: &str, route: ChannelRoute) -> HttpChannel {
        let config = AmazonConfig {
            base_url: "https://sellingpartnerapi-na.amazon.com".to_owned(),
            seller_id: seller.to_owned(),
            marketplace_id: marketplace.to_owned(),
            product_type: "PRODUCT".to_owned(),
            token_url: "https://api.amazon.com/auth/o2/token".to_owned(),
            client_id: "amzn1.application-oa2-client.x".to_owned(),
            client_secret: Secret::new("secret"),
            refresh_token: Secret::new(format!("refresh of {name}")),
            feed: None,
        };
        HttpChannel {
            config: ChannelConfig::new(name),
            adapter: AdapterSettings::Amazon(config),
            route,
            read_back_settle: None,
        }
    }

    #[test]
    fn channels_on_one_seller_and_marketplace_are_told_each_other() {
        let mut channels = [
            amazon("amazon-us", "A1SELLER", "ATVPDKIKX0DER"),
            amazon("amazon-bulk", "A1SELLER", "ATVPDKIKX0DER"),
            amazon("amazon-ca", "A1SELLER", "A2EUQ1WTGCTBG2"),
            amazon("amazon-other", "A2SELLER", "ATVPDKIKX0DER"),
        ];
        link_accounts(&mut channels).expect("listings agree");
        let shares: Vec<(&str, Vec<&str>)> = channels
            .iter()
            .map(|channel| {
                let shares = channel.config.shares_account_with.iter().map(|other| other.name.as_str()).collect();
                (channel.config.name.as_str(), shares)
            })
            .collect();
        assert_eq!(
            shares,
            [
                ("amazon-us", vec!["amazon-bulk"]),
                ("amazon-bulk", vec!["amazon-us"]),
                ("amazon-ca", vec![]),
                ("amazon-other", vec![])
            ]
        );
    }

    fn mapped(pairs: &[(&str, &str)]) -> Listings {
        Listings::Mapped(
            pairs.iter().map(|(sku, listing)| (Sku::parse(sku).expect("sku"), (*listing).to_owned())).collect(),
        )
    }

    #[test]
    fn channels_on_one_account_must_give_a_listing_to_one_sku_only() {
        assert_eq!(agree(&Listings::BySku, &Listings::BySku), Ok(()));
        let one = mapped(&[("SKU-1", "MLA1"), ("SKU-2", "MLA2")]);
        assert_eq!(agree(&one, &mapped(&[("SKU-3", "MLA3")])), Ok(()), "disjoint maps");
        assert_eq!(agree(&one, &mapped(&[("SKU-2", "MLA2")])), Ok(()), "the same pair in both");
        assert_eq!(
            agree(&one, &mapped(&[("SKU-3", "MLA1")])),
            Err("listing MLA1 is SKU SKU-1 in one and SKU-3 in the other".to_owned())
        );
        assert_eq!(
            agree(&one, &mapped(&[("SKU-1", "MLA9")])),
            Err("SKU SKU-1 is listing MLA1 in one and MLA9 in the other".to_owned())
        );
        assert!(agree(&one, &Listings::BySku).is_err(), "a mapped id may be another SKU's listing by SKU");

        let mut channels = [amazon("a", "A1SELLER", "ATVPDKIKX0DER"), amazon("b", "A1SELLER", "ATVPDKIKX0DER")];
        channels[1].config.rules.listings = mapped(&[("SKU-1", "SKU-2")]);
        let refused = link_accounts(&mut channels).expect_err("refused");
        assert!(refused.to_string().starts_with("channels a and b write one seller account's listings"), "{refused}");
    }

    /// Two channels on one account write the same listing for a tenant they both serve: the
    /// worker does not start. Tenants apart, or mapped listings apart, it does.
    #[test]
    fn channels_on_one_account_serve_no_tenant_s_sku_both() {
        let acme = || catalog_core::TenantId::parse("acme").expect("tenant");
        let route = |name: &str, tenants: Option<Vec<catalog_core::TenantId>>| match tenants {
            Some(tenants) => ChannelRoute::for_tenants(name, tenants),
            None => ChannelRoute::all(name),
        };
        let pair = |a: Option<Vec<_>>, b: Option<Vec<_>>| {
            [
                amazon_for("amazon-us", "A1SELLER", "ATVPDKIKX0DER", route("amazon-us", a)),
                amazon_for("amazon-bulk", "A1SELLER", "ATVPDKIKX0DER", route("amazon-bulk", b)),
            ]
        };
        for (a, b, both) in [
            (Some(vec![acme()]), Some(vec![acme()]), "both serve tenant acme and list every SKU by SKU"),
            (Some(vec![acme()]), None, "both serve tenant acme and list every SKU by SKU"),
            (None, None, "both serve every tenant and list every SKU by SKU"),
        ] {
            let refused = link_accounts(&mut pair(a, b)).expect_err("refused").to_string();
            assert!(refused.contains(both), "{refused}");
        }
        let mut mapped_apart = pair(None, None);
        mapped_apart[0].config.rules.listings = mapped(&[("SKU-1", "L1")]);
        mapped_apart[1].config.rules.listings = mapped(&[("SKU-2", "L2")]);
        link_accounts(&mut mapped_apart).expect("no SKU in both maps");
        mapped_apart[1].config.rules.listings = mapped(&[("SKU-2", "L2"), ("SKU-1", "L1")]);
        let refused = link_accounts(&mut mapped_apart).expect_err("SKU-1 in both").to_string();
        assert!(refused.contains("both serve every tenant and list SKU SKU-1"), "{refused}");
    }
}
