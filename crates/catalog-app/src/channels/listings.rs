//! A channel's SKU → listing map, written inline in the channels file (`"listings": {"ABC-1":
//! "MLA123"}`) or kept in a CSV file beside it (`"listings_file": "ml.csv"`, lines
//! `sku,listing` with that header): checked whole at start, SKUs normalized as the catalog
//! normalizes them, each SKU and each listing once.

use std::collections::BTreeMap;
use std::path::Path;

use catalog_core::{Listings, Sku};
use catalog_publish::marketplace::mercadolibre::{MercadoLibreListing, UserProductListing};
use catalog_publish::marketplace::shopify::is_inventory_item_gid;

use super::file::ChannelsError;
use super::AdapterSettings;

/// The `listings` object's pairs in the file's order, a key written twice kept twice: read
/// into a map, the last would win with nothing said, and the SKU be sent to the wrong listing.
#[derive(Debug)]
pub(super) struct Pairs(pub(super) Vec<(String, String)>);

impl<'de> serde::Deserialize<'de> for Pairs {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Visitor;
        impl<'de> serde::de::Visitor<'de> for Visitor {
            type Value = Pairs;
            fn expecting(&self, formatter: &mut std::fmt::Formatter) -> std::fmt::Result {
                formatter.write_str("an object of SKU to listing id")
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<Pairs, A::Error> {
                let mut pairs = Vec::new();
                while let Some(pair) = map.next_entry()? {
                    pairs.push(pair);
                }
                Ok(Pairs(pairs))
            }
        }
        deserializer.deserialize_map(Visitor)
    }
}

/// The map from `(sku, listing)` pairs, with `source` naming where they came from in errors.
pub(super) fn from_pairs<'a>(
    channel: &str,
    pairs: impl IntoIterator<Item = (&'a str, &'a str)>,
    source: &dyn Fn(usize) -> String,
) -> Result<BTreeMap<Sku, String>, ChannelsError> {
    let mut map = BTreeMap::new();
    // Two SKUs on one listing would overwrite each other's quantity there.
    let mut owners: BTreeMap<String, Sku> = BTreeMap::new();
    for (index, (sku_text, listing)) in pairs.into_iter().enumerate() {
        let invalid = |error: String| ChannelsError::Listing { channel: channel.to_owned(), at: source(index), error };
        let sku = Sku::parse(sku_text).map_err(|error| invalid(format!("sku {sku_text:?} {error}")))?;
        let listing = listing.trim();
        if listing.is_empty() {
            return Err(invalid(format!("sku {sku} has an empty listing id")));
        }
        if let Some(earlier) = map.insert(sku.clone(), listing.to_owned()) {
            return Err(invalid(format!("sku {sku} is listed twice ({earlier:?} and {listing:?})")));
        }
        if let Some(owner) = owners.insert(listing.to_owned(), sku.clone()) {
            return Err(invalid(format!("listing {listing:?} is given to two skus ({owner} and {sku})")));
        }
    }
    Ok(map)
}

/// Reads a listings CSV file: a `sku,listing` header, then one pair per line; blank lines
/// are skipped. A listing id holds no comma (none of the five marketplaces' ids does).
pub(super) fn read_csv(channel: &str, path: &Path) -> Result<BTreeMap<Sku, String>, ChannelsError> {
    let text = std::fs::read_to_string(path).map_err(|error| ChannelsError::Listing {
        channel: channel.to_owned(),
        at: path.display().to_string(),
        error: format!("reading it: {error}"),
    })?;
    let mut lines = text.lines().enumerate().filter(|(_, line)| !line.trim().is_empty());
    let at = |number: usize| format!("{} line {}", path.display(), number + 1);
    match lines.next() {
        Some((_, header)) if header.trim().eq_ignore_ascii_case("sku,listing") => {}
        Some((number, header)) => {
            return Err(ChannelsError::Listing {
                channel: channel.to_owned(),
                at: at(number),
                error: format!("the header must be \"sku,listing\", not {header:?}"),
            })
        }
        None => return Ok(BTreeMap::new()),
    }
    let mut pairs = Vec::new();
    let mut numbers = Vec::new();
    for (number, line) in lines {
        let Some((sku, listing)) = line.split_once(',') else {
            return Err(ChannelsError::Listing {
                channel: channel.to_owned(),
                at: at(number),
                error: format!("expected \"sku,listing\", got {line:?}"),
            });
        };
        if listing.contains(',') {
            return Err(ChannelsError::Listing {
                channel: channel.to_owned(),
                at: at(number),
                error: format!("a listing id holds no comma: {line:?}"),
            });
        }
        pairs.push((sku, listing));
        numbers.push(number);
    }
    from_pairs(channel, pairs, &|index| at(numbers[index]))
}

/// Refuses listings a platform cannot take, at start rather than at each first publish (a
/// dead letter per item, requeued by every heal round): Shopify sets quantities by inventory
/// item (`gid://shopify/InventoryItem/…`) and Mercado Libre writes items by their ids
/// (`MLA…`, `up:…`), never by a seller's SKU, and their ids become request fields and paths.
pub(super) fn check_listings(
    channel: &str,
    adapter: &AdapterSettings,
    listings: &Listings,
) -> Result<(), ChannelsError> {
    let (platform, valid, expected): (&str, fn(&str) -> bool, &str) = match adapter {
        AdapterSettings::Shopify(_) => ("Shopify", is_inventory_item_gid, "an inventory item (gid://shopify/InventoryItem/30322695)"),
        AdapterSettings::MercadoLibre(_) => (
            "Mercado Libre",
            |listing| MercadoLibreListing::parse(listing).is_some() || UserProductListing::parse(listing).is_some(),
            "a Mercado Libre item id (MLA123456789), one with a variation id (MLA123456789/174997747229), or a user product's stock (up:MLBU206642488, or up:MLBU206642488@9876543/MXP123451 at a warehouse)",
        ),
        _ => return Ok(()),
    };
    let map = match listings {
        Listings::Mapped(map) => map,
        Listings::BySku => {
            return Err(ChannelsError::Listing {
                channel: channel.to_owned(),
                at: "the channel".to_owned(),
                error: format!("{platform} knows no listing by SKU: give \"listings\" (or \"listings_file\") mapping each SKU to {expected}"),
            })
        }
    };
    match map.iter().find(|(_, listing)| !valid(listing)) {
        Some((sku, listing)) => Err(ChannelsError::Listing {
            channel: channel.to_owned(),
            at: "the listing map".to_owned(),
            error: format!("sku {sku}: {listing:?} is not {expected}"),
        }),
        None => Ok(()),
    }
}
