//! The CSAF product tree as the normalizer reads it: every product id
//! with its name, purl and CPE (from `branches[]` at any depth and
//! `full_product_names[]`), relationship products, product groups, and
//! the key each product's claims take.

use simd_json::prelude::*;

use crate::normalize::{
    distinct_fields, elements, kind_of, non_empty_str, quoted, DropReason, Drops, FastMap, FastSet,
    Fields, NormalizeError, Value, MAX_DEPTH,
};

/// The trimmed, non-empty strings of an optional array (anything else in it
/// is skipped).
fn strings<'a>(v: Option<Value<'a>>) -> impl Iterator<Item = &'a str> {
    elements(v).filter_map(|s| s.into_string().map(str::trim).filter(|s| !s.is_empty()))
}

/// What the product tree says about one product id.
#[derive(Clone, Copy, Default)]
struct Product<'a> {
    name: Option<&'a str>,
    purl: Option<&'a str>,
    cpe: Option<&'a str>,
}

impl<'a> Product<'a> {
    /// A `full_product_name_t` object: its id and what identifies it.
    fn read(v: Value<'a>) -> Option<(&'a str, Product<'a>)> {
        let [id, name, helper] = v.pick(["product_id", "name", "product_identification_helper"]);
        let id = non_empty_str(id)?;
        let [purl, cpe] = helper.pick(["purl", "cpe"]);
        Some((
            id,
            Product {
                name: non_empty_str(name),
                purl: non_empty_str(purl),
                cpe: non_empty_str(cpe),
            },
        ))
    }
}

/// A relationship product: "`component` as `category` of `platform`".
struct Relationship<'a> {
    /// The relationship's own `full_product_name`.
    product: Product<'a>,
    /// `product_reference`.
    component: Option<&'a str>,
    /// `relates_to_product_reference`.
    platform: Option<&'a str>,
    /// `category`, e.g. `default_component_of`.
    category: Option<&'a str>,
}

/// A document's `product_tree`, indexed by product id.
#[derive(Default)]
pub(super) struct Tree<'a> {
    /// Products from `branches[]` and `full_product_names[]`.
    products: FastMap<&'a str, Product<'a>>,
    /// Products defined by `relationships[]`, by their own product id.
    relationships: FastMap<&'a str, Relationship<'a>>,
    /// `product_groups[]`: group id to member product ids.
    groups: FastMap<&'a str, Vec<&'a str>>,
}

impl<'a> Tree<'a> {
    pub(super) fn read(pt: Value<'a>) -> Result<Tree<'a>, NormalizeError> {
        let mut tree = Tree::default();
        if let Some(branches) = pt.field("branches") {
            tree.walk_branches(branches, 1)?;
        }
        for p in elements(pt.field("full_product_names")) {
            if let Some((id, product)) = Product::read(p) {
                tree.add_product(id, product);
            }
        }
        for r in elements(pt.field("relationships")) {
            let [name, component, platform, category] = r.pick([
                "full_product_name",
                "product_reference",
                "relates_to_product_reference",
                "category",
            ]);
            let Some((id, product)) = name.and_then(Product::read) else {
                continue;
            };
            // A repeated relationship id (CSAF test 6.1.2) keeps the first.
            tree.relationships.entry(id).or_insert(Relationship {
                product,
                component: non_empty_str(component),
                platform: non_empty_str(platform),
                category: non_empty_str(category),
            });
        }
        for g in elements(pt.field("product_groups")) {
            let [gid, ids] = g.pick(["group_id", "product_ids"]);
            if let Some(gid) = non_empty_str(gid) {
                let members = tree.groups.entry(gid).or_default();
                for id in strings(ids) {
                    if !members.contains(&id) {
                        members.push(id);
                    }
                }
            }
        }
        Ok(tree)
    }

    fn walk_branches(&mut self, branches: Value<'a>, depth: usize) -> Result<(), NormalizeError> {
        if depth > MAX_DEPTH {
            return Err(NormalizeError(format!("CSAF branches nested deeper than {MAX_DEPTH}")));
        }
        for b in elements(Some(branches)) {
            let [product, sub] = b.pick(["product", "branches"]);
            if let Some((id, product)) = product.and_then(Product::read) {
                self.add_product(id, product);
            }
            if let Some(sub) = sub {
                self.walk_branches(sub, depth + 1)?;
            }
        }
        Ok(())
    }

    /// A product id defined twice (CSAF test 6.1.2) keeps its first
    /// definition; a later one only fills in what the first lacked.
    fn add_product(&mut self, id: &'a str, p: Product<'a>) {
        let e = self.products.entry(id).or_default();
        e.name = e.name.or(p.name);
        e.purl = e.purl.or(p.purl);
        e.cpe = e.cpe.or(p.cpe);
    }

    fn name_of(&self, id: &str) -> Option<&'a str> {
        match self.relationships.get(id) {
            Some(r) => r.product.name,
            None => self.products.get(id).and_then(|p| p.name),
        }
    }

    /// The purl of a product; for a relationship product its own helper
    /// purl, else its component's (followed through nested relationships,
    /// at most [`MAX_DEPTH`] steps so a cycle ends).
    fn purl_of(&self, id: &str) -> Option<&'a str> {
        let mut id = id;
        for _ in 0..MAX_DEPTH {
            if let Some(r) = self.relationships.get(id) {
                if r.product.purl.is_some() {
                    return r.product.purl;
                }
                id = r.component?;
            } else {
                return self.products.get(id).and_then(|p| p.purl);
            }
        }
        None
    }

    fn cpe_of(&self, id: &str) -> Option<&'a str> {
        match self.relationships.get(id) {
            Some(r) => r.product.cpe,
            None => self.products.get(id).and_then(|p| p.cpe),
        }
    }

    /// Whether `id` is a product (from the tree or a relationship).
    fn defines(&self, id: &str) -> bool {
        self.products.contains_key(id) || self.relationships.contains_key(id)
    }

    /// The members of group `id`, when `id` is a group and not a product
    /// (an id that is both names the product).
    fn group(&self, id: &str) -> Option<&[&'a str]> {
        if self.defines(id) {
            return None;
        }
        self.groups.get(id).map(Vec::as_slice)
    }

    /// Product ids of a `product_ids` list (a group id there expanded to
    /// its members) plus the members of a `group_ids` list; `None` when the
    /// entry names no products or groups at all.
    pub(super) fn scope(
        &self,
        products: Option<Value<'a>>,
        groups: Option<Value<'a>>,
    ) -> Scope<'a> {
        let listed =
            |v: Option<Value<'a>>| v.and_then(|v| v.as_array()).is_some_and(|a| !a.is_empty());
        if !listed(products) && !listed(groups) {
            return None;
        }
        let mut ids: FastSet<&'a str> = FastSet::default();
        for id in strings(products) {
            match self.group(id) {
                Some(members) => ids.extend(members.iter().copied()),
                None => {
                    ids.insert(id);
                }
            }
        }
        for gid in strings(groups) {
            if let Some(members) = self.groups.get(gid) {
                ids.extend(members.iter().copied());
            }
        }
        Some(ids)
    }

    /// Reads one status list (`key` as written in vulnerability `i`):
    /// `emit(product id, group)` for each product it names, a group
    /// expanded to its members; every element that names none is a
    /// defect in `drops`.
    pub(super) fn read_list(
        &self,
        i: usize,
        key: &str,
        list: Value<'a>,
        drops: &mut Drops,
        emit: &mut dyn FnMut(&'a str, Option<&'a str>),
    ) {
        if list.is_null() {
            return;
        }
        let Some(list) = list.as_array() else {
            drops.defect(
                DropReason::NoProductId,
                1,
                || format!("vulnerabilities[{i}].product_status.{key}"),
                || format!("{} is {}, not a list of product ids", quoted(key), kind_of(list)),
            );
            return;
        };
        for (j, el) in list.iter().enumerate() {
            let at = || format!("vulnerabilities[{i}].product_status.{key}[{j}]");
            let Some(id) = el.into_string().map(str::trim).filter(|s| !s.is_empty()) else {
                drops.defect(DropReason::NoProductId, 1, at, || match el.into_string() {
                    Some(_) => "the product id is empty".to_owned(),
                    None => format!("the product id is {}, not a string", kind_of(el)),
                });
                continue;
            };
            if self.defines(id) {
                emit(id, None);
                continue;
            }
            let Some(members) = self.group(id) else {
                drops.defect(DropReason::UnresolvedReference, 1, at, || {
                    format!("product id {} is not defined in the product tree", quoted(id))
                });
                continue;
            };
            if members.is_empty() {
                drops.defect(DropReason::UnresolvedReference, 1, at, || {
                    format!("product group {} has no products", quoted(id))
                });
            }
            for &m in members {
                if self.defines(m) {
                    emit(m, Some(id));
                } else {
                    drops.defect(DropReason::UnresolvedReference, 1, at, || {
                        format!(
                            "product id {}, a member of group {}, is not defined in the product tree",
                            quoted(m),
                            quoted(id)
                        )
                    });
                }
            }
        }
    }

    /// The entries of one status list (a group counting once per member,
    /// at least once), as [`Tree::read_list`] would read them.
    pub(super) fn count_list(&self, list: Value<'a>) -> u64 {
        if list.is_null() {
            return 0;
        }
        let Some(list) = list.as_array() else { return 1 };
        list.iter()
            .map(|el| {
                let id = el.into_string().map(str::trim).unwrap_or_default();
                self.group(id).map_or(1, |m| m.len().max(1) as u64)
            })
            .sum()
    }

    /// The entries of a whole `product_status` (`recommended` aside).
    pub(super) fn count_entries(&self, ps: Value<'a>) -> u64 {
        if !ps.is_object() {
            return u64::from(ps.as_array().is_none_or(|a| !a.is_empty()));
        }
        distinct_fields(ps)
            .into_iter()
            .filter(|(k, _)| !k.trim().eq_ignore_ascii_case("recommended"))
            .map(|(_, list)| self.count_list(list))
            .sum()
    }

    /// How claims about product `id` are keyed and described.
    pub(super) fn target(&self, id: &'a str, keys: &Keys) -> Target<'a> {
        // One entry for most products; at most eight for a relationship.
        let mut meta: Vec<(&'static str, &'a str)> = Vec::with_capacity(2);
        let mut push = |k: &'static str, v: Option<&'a str>| {
            if let Some(v) = v {
                meta.push((k, v));
            }
        };
        if let Some(r) = self.relationships.get(id) {
            // Keyed on the relationship's own id: the same component on two
            // platforms is two products (SPEC).
            push("productName", r.product.name);
            push("cpe", r.product.cpe);
            push("relationship", r.category);
            push("component", r.component);
            push("platform", r.platform);
            if let Some(platform) = r.platform {
                push("platformName", self.name_of(platform));
                push("platformPurl", self.purl_of(platform));
                push("platformCpe", self.cpe_of(platform));
            }
            return Target { key: id, purl: self.purl_of(id), metadata: meta };
        }
        let Some(p) = self.products.get(id) else {
            // Not reached: ids are resolved before they get here.
            return Target { key: id, purl: None, metadata: meta };
        };
        let key = p
            .purl
            .filter(|purl| keys.usable(purl, id))
            .or_else(|| p.cpe.filter(|cpe| keys.usable(cpe, id)))
            .unwrap_or(id);
        push("productName", p.name);
        if key != id {
            push("productId", Some(id));
        }
        if p.cpe.is_some_and(|cpe| cpe != key) {
            push("cpe", p.cpe);
        }
        Target { key, purl: p.purl, metadata: meta }
    }
}

/// Which purls and CPEs may serve as product keys.
///
/// SPEC: productKey "never collapses two products into one". CSAF product
/// ids are unique in a document, but purls and CPEs need not be: two
/// product ids with the same purl (say, one package listed under two
/// product families) would share a key and `resolve_claims` would drop one
/// of them. So a purl or CPE is a key only for the one product id that
/// carries it; products sharing one fall back to their next identifier
/// (CPE, then product id), keeping the purl in `purl`. Likewise a purl or
/// CPE that equals some *other* product's id is not used, so no two
/// product ids in the document ever map to the same key.
pub(super) struct Keys<'a> {
    /// purl or CPE value to the single product id carrying it, or `None`
    /// when several do.
    owners: FastMap<&'a str, Option<&'a str>>,
    /// Every product id the tree defines.
    ids: FastSet<&'a str>,
}

impl<'a> Keys<'a> {
    pub(super) fn new(tree: &Tree<'a>) -> Keys<'a> {
        let ids = tree.products.keys().chain(tree.relationships.keys()).copied().collect();
        let mut owners: FastMap<&'a str, Option<&'a str>> = FastMap::default();
        for (&id, p) in &tree.products {
            let idents = [p.purl, p.cpe.filter(|c| Some(*c) != p.purl)];
            for ident in idents.into_iter().flatten() {
                owners
                    .entry(ident)
                    .and_modify(|o| {
                        if *o != Some(id) {
                            *o = None;
                        }
                    })
                    .or_insert(Some(id));
            }
        }
        Keys { owners, ids }
    }

    fn usable(&self, ident: &str, id: &str) -> bool {
        self.owners.get(ident) == Some(&Some(id)) && (ident == id || !self.ids.contains(ident))
    }
}

/// Key, purl and product metadata of one product id (computed once per
/// document).
pub(super) struct Target<'a> {
    pub(super) key: &'a str,
    pub(super) purl: Option<&'a str>,
    pub(super) metadata: Vec<(&'static str, &'a str)>,
}

/// The product ids a flag, threat, remediation or score covers; `None`
/// when the entry names no products, so it applies to the whole
/// vulnerability.
pub(super) type Scope<'a> = Option<FastSet<&'a str>>;
