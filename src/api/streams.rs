//! The limits every event stream keeps (datapoint and event SSE, portal SSE, XRTC streams): at
//! most `limits.max_streams` open on the node and `limits.max_streams_per_reader` per reader,
//! and none open longer than its lifetime. A stream holds its share inside its [`Ending`], so
//! the share goes back whenever the stream ends, for whatever reason.

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use crate::access::{Actor, Credential, Ending};
use crate::share::{Full, Share, Shares};

/// Who a stream counts against.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Reader {
    /// A token's issuer and subject.
    Subject(Arc<str>),
    /// An XRTC account.
    Account(Arc<str>),
    /// An anonymous reader (or a token without a subject): its address group.
    Address(IpAddr),
}

impl Reader {
    /// The reader behind `actor`, reading from `client`.
    pub fn of(actor: &Actor, client: IpAddr) -> Self {
        match actor {
            Actor::Token(token) => match &token.subject {
                Some(subject) => Self::Subject(format!("{}\n{subject}", token.issuer).into()),
                None => Self::Address(crate::net::address_group(client)),
            },
            Actor::Xrtc(xrtc) => Self::Account(xrtc.account.clone()),
            _ => Self::Address(crate::net::address_group(client)),
        }
    }
}

/// A stream refused for a limit; the sentence says which.
#[derive(Debug, Clone, Copy)]
pub struct StreamsFull(pub Full);

impl StreamsFull {
    /// How long the client is asked to wait.
    pub const RETRY: Duration = Duration::from_secs(5);

    /// A sentence for the client.
    pub fn sentence(self) -> &'static str {
        match self.0 {
            Full::Node => "The server has as many event streams open as it may; try again later.",
            Full::Holder => {
                "This reader has as many event streams open as it may; close one or try again later."
            }
        }
    }
}

impl From<StreamsFull> for super::error::ApiError {
    fn from(full: StreamsFull) -> Self {
        Self::busy(full.sentence(), StreamsFull::RETRY)
    }
}

/// The node's open streams and their lifetime.
#[derive(Debug)]
pub struct Streams {
    shares: Arc<Shares<Reader>>,
    lifetime: Duration,
    recheck: Duration,
}

impl Streams {
    /// At most `total` streams, `each` per reader, each open at most `lifetime`; credentials
    /// asked again every `recheck`.
    pub fn new(total: usize, each: usize, lifetime: Duration, recheck: Duration) -> Self {
        Self {
            shares: Shares::new(total, each),
            lifetime,
            recheck,
        }
    }

    /// Opens a stream for `reader`, authorized by `credential`: its [`Ending`] resolves when the
    /// credential ends or the stream has lasted its lifetime (or `lifetime`, when shorter), and
    /// holds the stream's share until then.
    pub fn open(
        &self,
        reader: Reader,
        credential: Arc<dyn Credential>,
        lifetime: Option<Duration>,
    ) -> Result<Ending, StreamsFull> {
        let share = self.shares.take(reader).map_err(StreamsFull)?;
        let lifetime = lifetime.map_or(self.lifetime, |own| own.min(self.lifetime));
        let ending = crate::access::ending(credential, self.recheck);
        Ok(Box::pin(async move {
            let _share: Share<Reader> = share;
            tokio::select! {
                why = ending => why,
                () = tokio::time::sleep(lifetime) => "the stream reached its maximum lifetime".to_owned(),
            }
        }))
    }

    /// How many streams `reader` has open.
    pub fn open_by(&self, reader: &Reader) -> usize {
        self.shares.held_by(reader)
    }
}
