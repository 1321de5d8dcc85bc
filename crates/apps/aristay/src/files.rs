//! Checks for uploaded task photos: what the bytes really are, and a name safe to show.
//!
//! The type comes from the file's magic bytes against a short allow-list of raster image
//! formats; the name and content type the client declares are ignored, because both are
//! whatever the client wants them to be. SVG is never allowed: it is a document that can
//! carry script. The original name is kept only for display and downloads (the object
//! itself is stored under a generated id), so sanitising it is about what a person or a
//! `Content-Disposition` header will see, not about paths on a disk.
//! (For the checksum use `bucketbase_engine::canonical::sha256_hex`.)

/// An allowed image type: its MIME type and the extension it is stored under.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ImageKind {
    pub mime: &'static str,
    pub ext: &'static str,
}

impl ImageKind {
    pub const PNG: ImageKind = ImageKind::new("image/png", "png");
    pub const JPEG: ImageKind = ImageKind::new("image/jpeg", "jpg");
    pub const WEBP: ImageKind = ImageKind::new("image/webp", "webp");
    pub const GIF: ImageKind = ImageKind::new("image/gif", "gif");
    pub const HEIC: ImageKind = ImageKind::new("image/heic", "heic");
    pub const HEIF: ImageKind = ImageKind::new("image/heif", "heif");

    /// Every type [`sniff_image`] accepts.
    pub const ALLOWED: [ImageKind; 6] = [
        Self::PNG,
        Self::JPEG,
        Self::WEBP,
        Self::GIF,
        Self::HEIC,
        Self::HEIF,
    ];

    const fn new(mime: &'static str, ext: &'static str) -> Self {
        Self { mime, ext }
    }
}

/// The bytes are not an allowed image. `detected` names what they look like, if anything.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "only PNG, JPEG, WebP, GIF and HEIC/HEIF images can be uploaded{}",
    detected.map_or_else(String::new, |mime| format!("; this file looks like {mime}"))
)]
pub struct NotAllowed {
    pub detected: Option<&'static str>,
}

impl NotAllowed {
    pub fn code(&self) -> &'static str {
        "file_type_not_allowed"
    }

    /// Not a type uploads take.
    pub fn kind(&self) -> crate::error::ErrorKind {
        crate::error::ErrorKind::UnsupportedType
    }
}

/// The image type of `bytes`, judged by their magic bytes only.
pub fn sniff_image(bytes: &[u8]) -> Result<ImageKind, NotAllowed> {
    let detected = infer::get(bytes).map(|kind| kind.mime_type());
    match detected {
        Some("image/png") => Ok(ImageKind::PNG),
        Some("image/jpeg") => Ok(ImageKind::JPEG),
        Some("image/webp") => Ok(ImageKind::WEBP),
        Some("image/gif") => Ok(ImageKind::GIF),
        // infer says image/heif for the whole family; the major brand tells HEIC (phones).
        Some("image/heif") => match bytes.get(8..12) {
            Some(b"heic" | b"heix") => Ok(ImageKind::HEIC),
            _ => Ok(ImageKind::HEIF),
        },
        detected => Err(NotAllowed { detected }),
    }
}

const MAX_NAME_CHARS: usize = 120;
const MAX_EXT_CHARS: usize = 10;

/// A display-safe version of an uploaded file's name: no directories, no control or
/// invisible formatting characters, only letters, digits and `._-() `, single spaces, no
/// leading dots, at most 120 characters with the extension kept, never empty.
pub fn sanitize_filename(name: &str) -> String {
    let base = name.rsplit(['/', '\\']).next().unwrap_or_default();
    let mut cleaned = String::with_capacity(base.len());
    for c in base.chars() {
        if c.is_whitespace() {
            if !cleaned.ends_with(' ') {
                cleaned.push(' ');
            }
        } else if c.is_control() || is_invisible(c) {
            // dropped: they only hide or reorder what a person reads
        } else if c.is_alphanumeric() || is_combining_mark(c) || "._-()".contains(c) {
            cleaned.push(c);
        } else {
            cleaned.push('_');
        }
    }
    let cleaned = cleaned
        .trim_start_matches(['.', ' ', '-'])
        .trim_end_matches(['.', ' ']);
    let cleaned = truncate_keeping_extension(cleaned);
    if cleaned.is_empty() {
        "file".to_owned()
    } else {
        cleaned
    }
}

fn truncate_keeping_extension(name: &str) -> String {
    if name.chars().count() <= MAX_NAME_CHARS {
        return name.to_owned();
    }
    let (stem, ext) = match name.rsplit_once('.') {
        Some((stem, ext))
            if !stem.is_empty()
                && (1..=MAX_EXT_CHARS).contains(&ext.chars().count())
                && ext.chars().all(char::is_alphanumeric) =>
        {
            (stem, Some(ext))
        }
        _ => (name, None),
    };
    let room = MAX_NAME_CHARS - ext.map_or(0, |e| e.chars().count() + 1);
    let stem: String = stem.chars().take(room).collect();
    let stem = stem.trim_end_matches(['.', ' ']);
    match ext {
        Some(ext) => format!("{stem}.{ext}"),
        None => stem.to_owned(),
    }
}

/// Zero-width and bidirectional formatting characters, used to disguise names
/// (`invoice\u{202E}gnp.exe` reads as `invoiceexe.png`).
fn is_invisible(c: char) -> bool {
    matches!(c,
        '\u{00AD}' | '\u{061C}' | '\u{180E}' | '\u{200B}'..='\u{200F}' | '\u{202A}'..='\u{202E}'
        | '\u{2060}'..='\u{2064}' | '\u{2066}'..='\u{206F}' | '\u{FEFF}' | '\u{FFF9}'..='\u{FFFB}')
}

/// Combining accents, so decomposed names (as macOS sends them: `e` + U+0301) keep them.
fn is_combining_mark(c: char) -> bool {
    matches!(c,
        '\u{0300}'..='\u{036F}' | '\u{1AB0}'..='\u{1AFF}' | '\u{1DC0}'..='\u{1DFF}'
        | '\u{20D0}'..='\u{20FF}' | '\u{FE20}'..='\u{FE2F}' | '\u{3099}'..='\u{309A}')
}

#[cfg(test)]
mod tests {
    use super::*;

    const PNG: &[u8] =
        b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR\0\0\0\x01\0\0\0\x01\x08\x06\0\0\0\x1f\x15\xc4\x89";
    const JPEG: &[u8] = b"\xff\xd8\xff\xe0\0\x10JFIF\0\x01\x01\0\0\x01\0\x01\0\0";

    fn ftyp(major: &[u8; 4], compatible: &[u8]) -> Vec<u8> {
        let size = 16 + compatible.len() as u32;
        let mut bytes = size.to_be_bytes().to_vec();
        bytes.extend_from_slice(b"ftyp");
        bytes.extend_from_slice(major);
        bytes.extend_from_slice(&[0, 0, 0, 0]);
        bytes.extend_from_slice(compatible);
        bytes
    }

    #[test]
    fn allowed_images_are_recognised_by_their_bytes() {
        assert_eq!(sniff_image(PNG), Ok(ImageKind::PNG));
        assert_eq!(sniff_image(JPEG), Ok(ImageKind::JPEG));
        assert_eq!(sniff_image(b"GIF89a\x01\0\x01\0\0\0\0"), Ok(ImageKind::GIF));
        assert_eq!(
            sniff_image(b"RIFF\x24\0\0\0WEBPVP8 \x18\0\0\0"),
            Ok(ImageKind::WEBP)
        );
        assert_eq!(
            sniff_image(&ftyp(b"heic", b"mif1heic")),
            Ok(ImageKind::HEIC)
        );
        assert_eq!(
            sniff_image(&ftyp(b"mif1", b"mif1heic")),
            Ok(ImageKind::HEIF)
        );
        assert_eq!(ImageKind::JPEG.ext, "jpg");
    }

    #[test]
    fn anything_else_is_refused_and_named_when_known() {
        let html = b"<!DOCTYPE html><html><script>alert(1)</script></html>";
        let err = sniff_image(html).unwrap_err();
        assert_eq!(err.detected, Some("text/html"));
        assert_eq!(
            (err.code(), err.kind()),
            (
                "file_type_not_allowed",
                crate::error::ErrorKind::UnsupportedType
            )
        );
        assert!(err.to_string().contains("text/html"), "{err}");

        let svg = br#"<svg xmlns="http://www.w3.org/2000/svg" onload="alert(1)"/>"#;
        assert!(sniff_image(svg).is_err());
        let xml_svg = br#"<?xml version="1.0"?><svg xmlns="http://www.w3.org/2000/svg"/>"#;
        assert!(sniff_image(xml_svg).is_err());

        let pdf = sniff_image(b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n").unwrap_err();
        assert_eq!(pdf.detected, Some("application/pdf"));
        let mut elf = b"\x7fELF\x02\x01\x01\0\0\0\0\0\0\0\0\0\x03\0>\0".to_vec();
        elf.resize(64, 0);
        let elf = sniff_image(&elf).unwrap_err();
        assert!(elf.detected.is_some());
        assert!(sniff_image(b"MZ\x90\0\x03\0\0\0\x04\0\0\0\xff\xff").is_err());
        assert_eq!(sniff_image(b""), Err(NotAllowed { detected: None }));
        assert_eq!(sniff_image(b"\x89PN"), Err(NotAllowed { detected: None }));
    }

    #[test]
    fn directories_and_traversal_are_stripped() {
        assert_eq!(sanitize_filename("../../etc/passwd"), "passwd");
        assert_eq!(sanitize_filename("..\\..\\windows\\win.ini"), "win.ini");
        assert_eq!(sanitize_filename("C:\\Users\\a\\photo.jpg"), "photo.jpg");
        assert_eq!(sanitize_filename("photos/"), "file");
        assert_eq!(sanitize_filename(".."), "file");
        assert_eq!(sanitize_filename(".htaccess"), "htaccess");
        assert_eq!(sanitize_filename(""), "file");
    }

    #[test]
    fn unsafe_characters_are_replaced_or_dropped() {
        assert_eq!(sanitize_filename("a\r\nb\0c.png"), "a bc.png");
        assert_eq!(sanitize_filename("my:file?<x>.png"), "my_file__x_.png");
        assert_eq!(
            sanitize_filename("  two   spaces\t.jpg "),
            "two spaces .jpg"
        );
        assert_eq!(sanitize_filename("\"quoted\";.png"), "_quoted__.png");
        assert_eq!(
            sanitize_filename("invoice\u{202E}gnp.exe"),
            "invoicegnp.exe"
        );
        assert_eq!(sanitize_filename("IMG_1234 (1).JPG"), "IMG_1234 (1).JPG");
    }

    #[test]
    fn unicode_letters_and_accents_are_kept() {
        assert_eq!(
            sanitize_filename("Chambre bleue – été.jpg"),
            "Chambre bleue _ été.jpg"
        );
        assert_eq!(sanitize_filename("cafe\u{301}.png"), "cafe\u{301}.png");
        assert_eq!(sanitize_filename("客室写真.heic"), "客室写真.heic");
        assert_eq!(sanitize_filename("фото😀.png"), "фото_.png");
    }

    #[test]
    fn long_names_are_cut_keeping_the_extension() {
        let long = format!("{}.jpeg", "é".repeat(300));
        let cut = sanitize_filename(&long);
        assert_eq!(cut.chars().count(), 120);
        assert!(cut.ends_with("é.jpeg"), "{cut}");

        let no_ext = "x".repeat(500);
        assert_eq!(sanitize_filename(&no_ext), "x".repeat(120));

        let odd_ext = format!("{}.{}", "a".repeat(100), "b".repeat(50));
        assert_eq!(sanitize_filename(&odd_ext).chars().count(), 120);
    }
}
