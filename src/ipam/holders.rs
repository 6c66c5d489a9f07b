//! The services holding one address. Almost every address has exactly one holder, so that case
//! is stored inline; only shared addresses pay for a vector. Kept sorted so that which holder an
//! error names never depends on the order services arrived in (a rebuilt allocator must answer
//! exactly as the one it replaces).

use super::types::ServiceKey;

#[derive(Debug, Clone)]
pub(crate) enum Holders {
    One(ServiceKey),
    /// Sorted, at least two.
    Many(Vec<ServiceKey>),
}

impl Holders {
    pub fn as_slice(&self) -> &[ServiceKey] {
        match self {
            Holders::One(key) => std::slice::from_ref(key),
            Holders::Many(keys) => keys,
        }
    }

    pub fn add(&mut self, service: &ServiceKey) {
        match self {
            Holders::One(key) if key == service => {}
            Holders::One(key) => {
                let mut keys = vec![key.clone(), service.clone()];
                keys.sort_unstable();
                *self = Holders::Many(keys);
            }
            Holders::Many(keys) => {
                if let Err(at) = keys.binary_search(service) {
                    keys.insert(at, service.clone());
                }
            }
        }
    }

    /// Removes `service`; true when nobody holds the address any more.
    pub fn remove(&mut self, service: &ServiceKey) -> bool {
        match self {
            Holders::One(key) => key == service,
            Holders::Many(keys) => {
                keys.retain(|k| k != service);
                if let [last] = keys.as_mut_slice() {
                    *self = Holders::One(std::mem::replace(last, ServiceKey::from("")));
                }
                false
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stays_sorted_and_reports_when_empty() {
        let (a, b, c) = (
            ServiceKey::from("a"),
            ServiceKey::from("b"),
            ServiceKey::from("c"),
        );
        let mut holders = Holders::One(c.clone());
        holders.add(&a);
        holders.add(&b);
        holders.add(&a);
        assert_eq!(holders.as_slice(), [a.clone(), b.clone(), c.clone()]);
        assert!(!holders.remove(&b));
        assert!(!holders.remove(&a));
        assert!(matches!(&holders, Holders::One(k) if *k == c));
        assert!(
            !holders.remove(&a),
            "removing a non-holder leaves the holder"
        );
        assert!(holders.remove(&c));
    }
}
