//! What the live stream brings while a list is loading. A loaded list may predate those
//! events (its query ran before they were committed), so a page that replaces a list must
//! apply them again on top of what it loaded, or they vanish until their item changes again.

/// The loads under way and the live items received meanwhile.
#[derive(Debug)]
pub struct LiveDuringLoad<T> {
    loads: u32,
    arrived: Vec<T>,
}

impl<T> Default for LiveDuringLoad<T> {
    fn default() -> Self {
        LiveDuringLoad {
            loads: 0,
            arrived: Vec::new(),
        }
    }
}

impl<T: Clone> LiveDuringLoad<T> {
    /// A load starts.
    pub fn start(&mut self) {
        self.loads += 1;
    }

    /// A live item arrived: kept while any load is under way.
    pub fn record(&mut self, item: &T) {
        if self.loads > 0 {
            self.arrived.push(item.clone());
        }
    }

    /// A load finished: the items that arrived since the first load under way began, oldest
    /// first (forgotten once no load is left).
    pub fn finish(&mut self) -> Vec<T> {
        self.loads = self.loads.saturating_sub(1);
        if self.loads == 0 {
            std::mem::take(&mut self.arrived)
        } else {
            self.arrived.clone()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn items_are_kept_only_while_a_load_is_under_way() {
        let mut l = LiveDuringLoad::default();
        l.record(&1);
        l.start();
        l.record(&2);
        l.start();
        l.record(&3);
        assert_eq!(l.finish(), [2, 3]);
        l.record(&4);
        assert_eq!(l.finish(), [2, 3, 4]);
        l.record(&5);
        l.start();
        assert_eq!(l.finish(), Vec::<i32>::new());
    }
}
