//! Downsampling: a stream's values cut into buckets of one interval, each summarised by the
//! aggregates asked for (`count`, `min`, `max`, `avg`, `sum`, `first`, `last`).
//!
//! Buckets are aligned to whole intervals since the Unix epoch (a bucket of `1m` starts on a
//! minute), so the same interval gives the same buckets whatever range is asked for; the
//! first and last bucket of a range hold only the values inside it. Empty buckets are left
//! out. The numeric aggregates need a numeric encoding (`FLOAT`, `DOUBLE`, `INT32`, `INT64`);
//! `count`, `first` and `last` suit every encoding.

use super::Encoding;

/// One aggregate of a bucket.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Aggregate {
    /// How many values.
    Count,
    /// The smallest value.
    Min,
    /// The largest value.
    Max,
    /// The mean.
    Avg,
    /// The sum.
    Sum,
    /// The earliest value.
    First,
    /// The latest value.
    Last,
}

impl Aggregate {
    /// Every aggregate, in the order buckets show them.
    pub const ALL: [Aggregate; 7] = [
        Aggregate::Count,
        Aggregate::Min,
        Aggregate::Max,
        Aggregate::Avg,
        Aggregate::Sum,
        Aggregate::First,
        Aggregate::Last,
    ];

    /// Its name in a query and a body.
    pub const fn name(self) -> &'static str {
        match self {
            Aggregate::Count => "count",
            Aggregate::Min => "min",
            Aggregate::Max => "max",
            Aggregate::Avg => "avg",
            Aggregate::Sum => "sum",
            Aggregate::First => "first",
            Aggregate::Last => "last",
        }
    }

    /// The aggregate named `name`.
    pub fn parse(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|a| a.name() == name)
    }

    /// Whether it needs numbers.
    pub const fn numeric(self) -> bool {
        matches!(
            self,
            Aggregate::Min | Aggregate::Max | Aggregate::Avg | Aggregate::Sum
        )
    }
}

/// The aggregates a read asks for, in [`Aggregate::ALL`]'s order, each at most once.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Aggregates(u8);

impl Aggregates {
    /// None asked for (a read then gets [`Self::default_for`] its stream).
    pub const EMPTY: Self = Self(0);

    /// Parses a comma-separated list (`min,max,avg`).
    pub fn parse(list: &str) -> Result<Self, String> {
        let mut bits = 0u8;
        for name in list.split(',').map(str::trim) {
            let aggregate = Aggregate::parse(name).ok_or_else(|| {
                format!(
                    "`{name}` is not an aggregate: use {}",
                    Aggregate::ALL.map(Aggregate::name).join(", ")
                )
            })?;
            bits |= 1 << aggregate as u8;
        }
        Ok(Self(bits))
    }

    /// What a stream of `encoding` gets when none are named: all that suit it.
    pub fn default_for(encoding: Encoding) -> Self {
        let numeric = encoding.is_numeric();
        Self(
            Aggregate::ALL
                .into_iter()
                .filter(|a| numeric || !a.numeric())
                .fold(0, |bits, a| bits | 1 << a as u8),
        )
    }

    /// Whether `aggregate` is asked for.
    pub fn has(self, aggregate: Aggregate) -> bool {
        self.0 & (1 << aggregate as u8) != 0
    }

    /// The aggregates asked for, in order.
    pub fn iter(self) -> impl Iterator<Item = Aggregate> {
        Aggregate::ALL.into_iter().filter(move |&a| self.has(a))
    }

    /// Why these do not suit `encoding`, if they do not.
    pub fn check(self, encoding: Encoding) -> Result<(), String> {
        let numeric = encoding.is_numeric();
        match self.iter().find(|a| a.numeric() && !numeric) {
            Some(a) => Err(format!(
                "`{}` needs a numeric stream (FLOAT, DOUBLE, INT32 or INT64); this one is {}: \
                 ask for count, first or last",
                a.name(),
                encoding.name()
            )),
            None => Ok(()),
        }
    }
}

/// What a downsampling read asks for.
#[derive(Debug, Clone, Copy)]
pub struct Asked {
    /// From this timestamp (inclusive), microseconds.
    pub from_us: i64,
    /// To this timestamp (exclusive), microseconds.
    pub to_us: i64,
    /// The buckets' width, microseconds.
    pub interval_us: i64,
    /// The aggregates.
    pub aggregates: Aggregates,
    /// Most buckets.
    pub limit: usize,
    /// About how many stored values to go through at most (`values.max_scan`, shared by the
    /// streams of one read).
    pub scan: u64,
}

/// A bucket's summary.
#[derive(Debug, Clone, PartialEq)]
pub struct Bucket {
    /// Its start (microseconds since the Unix epoch): a whole number of intervals.
    pub start_us: i64,
    /// How many values it holds (at least one).
    pub count: u64,
    /// The smallest value (numeric encodings).
    pub min: f64,
    /// The largest value (numeric encodings).
    pub max: f64,
    /// The sum (numeric encodings).
    pub sum: f64,
    /// The earliest value's bytes (kept when `first` or `last` is asked for).
    pub first: Vec<u8>,
    /// The latest value's bytes (likewise).
    pub last: Vec<u8>,
}

impl Bucket {
    /// The mean.
    pub fn avg(&self) -> f64 {
        self.sum / self.count as f64
    }
}

/// Cuts values, fed in ascending timestamp order, into buckets.
#[derive(Debug)]
pub struct Downsampler {
    interval_us: i64,
    encoding: Encoding,
    /// Whether `first` and `last` are asked for (else their bytes are not kept).
    keep_values: bool,
    open: Option<Bucket>,
    closed: Vec<Bucket>,
}

impl Downsampler {
    /// Buckets of `interval_us` (at least 1) for values of `encoding`, summarised by
    /// `aggregates`.
    pub fn new(interval_us: i64, encoding: Encoding, aggregates: Aggregates) -> Self {
        Self {
            interval_us: interval_us.max(1),
            encoding,
            keep_values: aggregates.has(Aggregate::First) || aggregates.has(Aggregate::Last),
            open: None,
            closed: Vec::new(),
        }
    }

    /// The start of the bucket holding `ts_us`.
    pub fn bucket_of(&self, ts_us: i64) -> i64 {
        ts_us.div_euclid(self.interval_us) * self.interval_us
    }

    /// Adds the next value (later than every value before it).
    pub fn push(&mut self, ts_us: i64, bytes: &[u8]) {
        let start = self.bucket_of(ts_us);
        let number = self.encoding.to_f64(bytes).unwrap_or(f64::NAN);
        match &mut self.open {
            Some(bucket) if bucket.start_us == start => {
                bucket.count += 1;
                bucket.min = bucket.min.min(number);
                bucket.max = bucket.max.max(number);
                bucket.sum += number;
                if self.keep_values {
                    bucket.last.clear();
                    bucket.last.extend_from_slice(bytes);
                }
            }
            open => {
                if let Some(done) = open.take() {
                    self.closed.push(done);
                }
                let kept = match self.keep_values {
                    true => bytes.to_vec(),
                    false => Vec::new(),
                };
                *open = Some(Bucket {
                    start_us: start,
                    count: 1,
                    min: number,
                    max: number,
                    sum: number,
                    first: kept.clone(),
                    last: kept,
                });
            }
        }
    }

    /// How many buckets are complete (a later value has started another).
    pub fn closed(&self) -> usize {
        self.closed.len()
    }

    /// The start of the bucket still open, if any.
    pub fn open_start(&self) -> Option<i64> {
        self.open.as_ref().map(|b| b.start_us)
    }

    /// Every bucket, the open one last (no more values are coming).
    pub fn finish(mut self) -> Vec<Bucket> {
        self.closed.extend(self.open.take());
        self.closed
    }

    /// The complete buckets only; the open one is dropped (to be read again from its start).
    pub fn complete(self) -> Vec<Bucket> {
        self.closed
    }
}

/// Reads an interval: a whole number and a unit, `us`, `ms`, `s`, `m`, `h` or `d` (`1m`,
/// `15s`, `500ms`); answers microseconds.
pub fn parse_interval(text: &str) -> Result<i64, String> {
    let split = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let (digits, unit) = text.split_at(split);
    let scale: i64 = match unit {
        "us" => 1,
        "ms" => 1_000,
        "s" => 1_000_000,
        "m" => 60_000_000,
        "h" => 3_600_000_000,
        "d" => 86_400_000_000,
        _ => 0,
    };
    digits
        .parse::<i64>()
        .ok()
        .filter(|n| *n > 0 && scale > 0)
        .and_then(|n| n.checked_mul(scale))
        .filter(|us| *us <= 366 * 86_400_000_000)
        .ok_or_else(|| {
            format!(
                "`{text}` is not an interval: use a whole number and a unit (us, ms, s, m, h or \
                 d), such as 1m or 500ms, at most 366d"
            )
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn double(x: f64) -> Vec<u8> {
        x.to_le_bytes().to_vec()
    }

    #[test]
    fn buckets_align_to_the_epoch_and_summarise_their_values() {
        let all = Aggregates::parse("count,min,max,sum,first,last").unwrap();
        let mut d = Downsampler::new(60_000_000, Encoding::Double, all);
        // 00:00:30, 00:00:59 in one minute; 00:01:00 starts the next; a value before 1970 too.
        for (ts, x) in [
            (-1, 7.0),
            (30_000_000, 1.0),
            (59_000_000, 3.0),
            (60_000_000, -2.0),
        ] {
            d.push(ts, &double(x));
        }
        let buckets = d.finish();
        assert_eq!(
            buckets.iter().map(|b| b.start_us).collect::<Vec<_>>(),
            [-60_000_000, 0, 60_000_000]
        );
        let minute = &buckets[1];
        assert_eq!((minute.count, minute.min, minute.max), (2, 1.0, 3.0));
        assert_eq!((minute.sum, minute.avg()), (4.0, 2.0));
        assert_eq!(
            (minute.first.clone(), minute.last.clone()),
            (double(1.0), double(3.0))
        );
    }

    #[test]
    fn intervals_and_aggregates_parse_or_say_why_not() {
        assert_eq!(parse_interval("1m"), Ok(60_000_000));
        assert_eq!(parse_interval("500ms"), Ok(500_000));
        assert_eq!(parse_interval("2d"), Ok(172_800_000_000));
        for bad in ["", "m", "0s", "1", "1w", "-1s", "1.5s", "367d"] {
            assert!(parse_interval(bad).is_err(), "{bad}");
        }
        let asked = Aggregates::parse("max,min").unwrap();
        assert_eq!(
            asked.iter().collect::<Vec<_>>(),
            [Aggregate::Min, Aggregate::Max]
        );
        assert!(Aggregates::parse("median").is_err());
        assert!(asked.check(Encoding::StringUtf8).is_err());
        assert!(
            Aggregates::parse("count,last")
                .unwrap()
                .check(Encoding::Bool)
                .is_ok()
        );
        assert!(!Aggregates::default_for(Encoding::Bool).has(Aggregate::Avg));
        assert!(Aggregates::default_for(Encoding::Int32).has(Aggregate::Avg));
    }
}
