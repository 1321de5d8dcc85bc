//! The kinds of failure aristay's domain code reports. Domain errors (a workbook that
//! cannot be read, a mapping that does not fit it, a file that is not an allowed image)
//! say what kind of failure they are, not which HTTP status to answer: the routes map a
//! kind to a status in one exhaustive match (`routes::status`), so a new kind that nobody
//! maps does not compile. (The CLI answers every such error with exit code 2.)

/// What kind of failure a domain error is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// The input is larger than a limit allows (including once decompressed).
    TooLarge,
    /// The input is not of a type this operation takes.
    UnsupportedType,
    /// The input is malformed, or does not fit what it is used with.
    BadInput,
}
