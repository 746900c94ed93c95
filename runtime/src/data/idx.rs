//! Reads MNIST-format IDX files (u8 images `idx3`, u8 labels `idx1`, plain or gzipped) into a [`Dataset`], refusing malformed or hostile input before allocating for it.
//!
//! An IDX file is a 4-byte magic `00 00 <type> <rank>`, then `rank`
//! big-endian u32 dimensions, then the elements row-major. Only type `0x08`
//! (unsigned bytes) is read: images have rank 3 (`[count, rows, cols]`),
//! labels rank 1 (`[count]`). A file starting with the gzip magic
//! `1f 8b` is inflated on the fly.
//!
//! Invariants (what makes hostile files cheap to refuse):
//! * the header is checked — magic, type, rank, element count against
//!   [`IdxLimits::max_elements`] with overflow-checked products — before the
//!   body buffer is allocated, and the buffer then grows only with the bytes
//!   actually present (a short file declaring a big body costs little);
//! * no read goes past header + body + 1 byte (the byte that detects trailing
//!   data), and the inflated stream is also cut at that size with
//!   [`Read::take`], so a gzip bomb costs at most the cap in inflation work.
//!
//! Pixels become f32 0.0–255.0, unscaled (scale with
//! [`Dataset::scale_features`], for example by 1/255).

use std::fs::File;
use std::io::{self, BufReader, Read};
use std::path::{Path, PathBuf};

use flate2::read::GzDecoder;

use super::dataset::{Dataset, DatasetError};

/// Classes of the MNIST family (MNIST, Fashion-MNIST): labels 0–9.
pub const IDX_CLASSES: usize = 10;

/// Caps on what an IDX reader accepts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct IdxLimits {
    /// Most elements (bytes) one file's body may declare; the default,
    /// 100 000 000, holds MNIST's 47 M-pixel training images twice over.
    pub max_elements: usize,
}

impl Default for IdxLimits {
    fn default() -> Self {
        Self {
            max_elements: 100_000_000,
        }
    }
}

/// The images of an `idx3` file: `count` images of `rows × cols` u8 pixels.
///
/// Only [`read_idx_images`] makes one, so `pixels().len()` is always
/// `count · rows · cols`, within the [`IdxLimits`] it was read with.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IdxImages {
    count: usize,
    rows: usize,
    cols: usize,
    pixels: Vec<u8>,
}

impl IdxImages {
    /// Number of images.
    pub fn count(&self) -> usize {
        self.count
    }

    /// Pixel rows per image.
    pub fn rows(&self) -> usize {
        self.rows
    }

    /// Pixel columns per image.
    pub fn cols(&self) -> usize {
        self.cols
    }

    /// The pixels, image by image, row-major.
    pub fn pixels(&self) -> &[u8] {
        &self.pixels
    }

    /// The pixels, taken out.
    pub fn into_pixels(self) -> Vec<u8> {
        self.pixels
    }
}

/// The train and test sets of an IDX directory.
#[derive(Clone, Debug, PartialEq)]
pub struct IdxSplits {
    /// From `train-images-idx3-ubyte` and `train-labels-idx1-ubyte`.
    pub train: Dataset,
    /// From `t10k-images-idx3-ubyte` and `t10k-labels-idx1-ubyte`.
    pub test: Dataset,
}

/// Why an IDX file or pair of files was refused.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum IdxError {
    /// A file could not be opened or read.
    #[error("{}: {source}; check the path and permissions", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// The OS error.
        source: io::Error,
    },
    /// Neither the plain nor the gzipped name of a file exists in the directory.
    #[error("{}: neither {name} nor {name}.gz exists; point at a directory holding the MNIST-format files", dir.display())]
    Missing {
        /// The directory searched.
        dir: PathBuf,
        /// The plain file name looked for.
        name: &'static str,
    },
    /// Reading the stream failed (an I/O error or a corrupt gzip stream).
    #[error("{what}: read failed: {source}; the file may be corrupt (re-download it)")]
    Read {
        /// `"images"` or `"labels"`.
        what: &'static str,
        /// The error.
        source: io::Error,
    },
    /// The first two bytes are not zero, so this is not an IDX file.
    #[error("{what}: magic {found:02x?} is not IDX (expected 00 00 <type> <rank>)")]
    Magic {
        /// `"images"` or `"labels"`.
        what: &'static str,
        /// The first four bytes.
        found: [u8; 4],
    },
    /// An element type other than unsigned bytes (`0x08`).
    #[error(
        "{what}: element type {found:#04x} is not supported; only u8 (0x08) IDX files are read"
    )]
    TypeCode {
        /// `"images"` or `"labels"`.
        what: &'static str,
        /// The type byte.
        found: u8,
    },
    /// The wrong number of dimensions.
    #[error("{what}: rank {found}, expected {expected} (images are idx3, labels idx1)")]
    Rank {
        /// `"images"` or `"labels"`.
        what: &'static str,
        /// The rank expected.
        expected: u8,
        /// The rank in the file.
        found: u8,
    },
    /// The declared dimensions multiply past the cap (or overflow).
    #[error("{what}: dimensions {dims:?} declare more than {cap} elements; raise IdxLimits::max_elements if the file is genuine")]
    TooLarge {
        /// `"images"` or `"labels"`.
        what: &'static str,
        /// The dimensions declared.
        dims: Vec<u32>,
        /// [`IdxLimits::max_elements`].
        cap: usize,
    },
    /// The stream ended before the header or body was complete.
    #[error("{what}: truncated: {expected} bytes declared, only {found} present; the file is incomplete")]
    Truncated {
        /// `"images"` or `"labels"`.
        what: &'static str,
        /// Bytes the header implies (header and body).
        expected: usize,
        /// Bytes present.
        found: usize,
    },
    /// Bytes after the declared body.
    #[error("{what}: data continues past the {expected} bytes the header declares; the header or file is wrong")]
    TrailingBytes {
        /// `"images"` or `"labels"`.
        what: &'static str,
        /// Bytes the header implies (header and body).
        expected: usize,
    },
    /// Images and labels differ in number.
    #[error("{images} images but {labels} labels; use the labels file that belongs to the images")]
    CountMismatch {
        /// Images in the images file.
        images: usize,
        /// Labels in the labels file.
        labels: usize,
    },
    /// The images and labels do not form a data set (a label ≥ the class count, zero-sized images, ...).
    #[error("images and labels do not form a data set: {0}")]
    Dataset(#[from] DatasetError),
}

/// Reads an `idx3` u8 images stream, plain or gzipped.
pub fn read_idx_images(reader: impl Read, limits: &IdxLimits) -> Result<IdxImages, IdxError> {
    let (dims, pixels) = read_idx(reader, "images", 3, limits)?;
    // `read_idx` returned exactly three dimensions, each ≤ u32::MAX, whose
    // product fits in usize (it was checked against the cap).
    let [count, rows, cols] = [dims[0], dims[1], dims[2]].map(|d| d as usize);
    Ok(IdxImages {
        count,
        rows,
        cols,
        pixels,
    })
}

/// Reads an `idx1` u8 labels stream, plain or gzipped.
pub fn read_idx_labels(reader: impl Read, limits: &IdxLimits) -> Result<Vec<u8>, IdxError> {
    Ok(read_idx(reader, "labels", 1, limits)?.1)
}

/// Joins images and labels into a [`Dataset`] with features `rows · cols`
/// pixels as f32 0.0–255.0 and labels in `0..classes`.
pub fn idx_dataset(
    images: IdxImages,
    labels: Vec<u8>,
    classes: usize,
) -> Result<Dataset, IdxError> {
    if images.count != labels.len() {
        return Err(IdxError::CountMismatch {
            images: images.count,
            labels: labels.len(),
        });
    }
    // Two u32 dimensions multiply within u64; on a narrower usize an image
    // too big to address is refused rather than wrapped.
    let Some(feature_dim) = images.rows.checked_mul(images.cols) else {
        return Err(IdxError::Dataset(DatasetError::TooLarge {
            rows: images.count,
            feature_dim: usize::MAX,
            cap: crate::tensor::MAX_ELEMENTS,
        }));
    };
    let features = images.pixels.into_iter().map(f32::from).collect();
    let labels = labels.into_iter().map(i64::from).collect();
    Ok(Dataset::new(features, labels, feature_dim, classes)?)
}

/// Loads an images file and a labels file (each plain or gzipped) as one
/// [`Dataset`] of [`IDX_CLASSES`] classes.
pub fn load_idx_pair(
    images: &Path,
    labels: &Path,
    limits: &IdxLimits,
) -> Result<Dataset, IdxError> {
    let open = |path: &Path| {
        File::open(path)
            .map(BufReader::new)
            .map_err(|source| IdxError::Io {
                path: path.to_path_buf(),
                source,
            })
    };
    let images = read_idx_images(open(images)?, limits)?;
    let labels = read_idx_labels(open(labels)?, limits)?;
    idx_dataset(images, labels, IDX_CLASSES)
}

/// Loads the MNIST layout from `dir`: `train-images-idx3-ubyte`,
/// `train-labels-idx1-ubyte`, `t10k-images-idx3-ubyte` and
/// `t10k-labels-idx1-ubyte`, each found plain or with a `.gz` suffix (plain
/// first), with the default [`IdxLimits`]. Debian's `dataset-fashion-mnist`
/// installs Fashion-MNIST this way in `/usr/share/datasets/fashion-mnist/`.
pub fn load_idx_dir(dir: &Path) -> Result<IdxSplits, IdxError> {
    let limits = IdxLimits::default();
    let find = |name: &'static str| {
        let plain = dir.join(name);
        if plain.is_file() {
            return Ok(plain);
        }
        let gz = dir.join(format!("{name}.gz"));
        if gz.is_file() {
            return Ok(gz);
        }
        Err(IdxError::Missing {
            dir: dir.to_path_buf(),
            name,
        })
    };
    let train = load_idx_pair(
        &find("train-images-idx3-ubyte")?,
        &find("train-labels-idx1-ubyte")?,
        &limits,
    )?;
    let test = load_idx_pair(
        &find("t10k-images-idx3-ubyte")?,
        &find("t10k-labels-idx1-ubyte")?,
        &limits,
    )?;
    Ok(IdxSplits { train, test })
}

/// The gzip magic bytes.
const GZIP_MAGIC: [u8; 2] = [0x1f, 0x8b];
/// The IDX element type code for unsigned bytes.
const TYPE_U8: u8 = 0x08;

/// Reads one u8 IDX stream of `rank` dimensions: its dimensions and body.
fn read_idx(
    mut reader: impl Read,
    what: &'static str,
    rank: u8,
    limits: &IdxLimits,
) -> Result<(Vec<u32>, Vec<u8>), IdxError> {
    let mut prefix = [0u8; 2];
    let got =
        read_full(&mut reader, &mut prefix).map_err(|source| IdxError::Read { what, source })?;
    let prefix = &prefix[..got];
    // The longest stream we ever need: header, body at the cap, one trailing byte.
    let bound = (4 + 4 * usize::from(rank))
        .saturating_add(limits.max_elements)
        .saturating_add(1) as u64;
    let stream = prefix.chain(reader);
    if prefix == GZIP_MAGIC {
        parse(GzDecoder::new(stream).take(bound), what, rank, limits)
    } else {
        parse(stream.take(bound), what, rank, limits)
    }
}

/// Parses an uncompressed IDX stream (see [`read_idx`]).
fn parse(
    mut stream: impl Read,
    what: &'static str,
    rank: u8,
    limits: &IdxLimits,
) -> Result<(Vec<u32>, Vec<u8>), IdxError> {
    let read_err = |source| IdxError::Read { what, source };
    let header_len = 4 + 4 * usize::from(rank);
    let mut magic = [0u8; 4];
    let got = read_full(&mut stream, &mut magic).map_err(read_err)?;
    if got < 4 {
        return Err(IdxError::Truncated {
            what,
            expected: header_len,
            found: got,
        });
    }
    if magic[0] != 0 || magic[1] != 0 {
        return Err(IdxError::Magic { what, found: magic });
    }
    if magic[2] != TYPE_U8 {
        return Err(IdxError::TypeCode {
            what,
            found: magic[2],
        });
    }
    if magic[3] != rank {
        return Err(IdxError::Rank {
            what,
            expected: rank,
            found: magic[3],
        });
    }
    let mut dims_bytes = vec![0u8; 4 * usize::from(rank)];
    let got = read_full(&mut stream, &mut dims_bytes).map_err(read_err)?;
    if got < dims_bytes.len() {
        return Err(IdxError::Truncated {
            what,
            expected: header_len,
            found: 4 + got,
        });
    }
    let dims: Vec<u32> = dims_bytes
        .chunks_exact(4)
        .map(|b| u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
        .collect();
    let elements = dims
        .iter()
        .try_fold(1usize, |acc, &d| acc.checked_mul(d as usize))
        .filter(|&n| n <= limits.max_elements);
    let Some(elements) = elements else {
        return Err(IdxError::TooLarge {
            what,
            dims,
            cap: limits.max_elements,
        });
    };
    let expected = header_len + elements;
    // Grow with the data actually present, so a header declaring a big body
    // in a short file costs no more memory than the file holds.
    let mut body = Vec::with_capacity(elements.min(1 << 20));
    let got = (&mut stream)
        .take(elements as u64)
        .read_to_end(&mut body)
        .map_err(read_err)?;
    if got < elements {
        return Err(IdxError::Truncated {
            what,
            expected,
            found: header_len + got,
        });
    }
    let mut extra = [0u8; 1];
    if read_full(&mut stream, &mut extra).map_err(read_err)? != 0 {
        return Err(IdxError::TrailingBytes { what, expected });
    }
    Ok((dims, body))
}

/// Fills `buf` as far as the stream allows; returns the bytes read (fewer
/// than `buf.len()` only at end of stream).
fn read_full(reader: &mut impl Read, buf: &mut [u8]) -> io::Result<usize> {
    let mut filled = 0;
    while filled < buf.len() {
        match reader.read(&mut buf[filled..]) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(filled)
}
