//! Which channels write one seller account's listings (decision 0056). A marketplace knows an
//! account's listings by SKU alone, so two channels on one account (one per tenant, or one
//! sending single updates and one sending feeds) write the same listing for a SKU their
//! tenants share: each channel is told the others, and writes no such SKU.

use super::{AdapterSettings, HttpChannel};

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

/// Tells each channel the others on its seller account (`ChannelConfig::shares_account_with`).
pub(super) fn link_accounts(channels: &mut [HttpChannel]) {
    let links: Vec<Vec<String>> = channels
        .iter()
        .enumerate()
        .map(|(i, channel)| {
            channels
                .iter()
                .enumerate()
                .filter(|(j, other)| *j != i && same_account(&channel.adapter, &other.adapter))
                .map(|(_, other)| other.config.name.clone())
                .collect()
        })
        .collect();
    for (channel, shares) in channels.iter_mut().zip(links) {
        if !shares.is_empty() {
            tracing::info!(
                channel = %channel.config.name,
                shares_account_with = %shares.join(","),
                "channels write one seller account's listings: a SKU items of two of their tenants hold is written by none"
            );
        }
        channel.config.shares_account_with = shares;
    }
}

#[cfg(test)]
mod tests {
    use catalog_publish::marketplace::amazon::AmazonConfig;
    use catalog_publish::{ChannelConfig, Secret};
    use catalog_store::ChannelRoute;

    use super::*;

    fn amazon(name: &str, seller: &str, marketplace: &str) -> HttpChannel {
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
            route: ChannelRoute::all(name),
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
        link_accounts(&mut channels);
        let shares: Vec<(&str, Vec<&str>)> = channels
            .iter()
            .map(|channel| {
                let shares = channel.config.shares_account_with.iter().map(String::as_str).collect();
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
}
