import Common
import Foundation

/// The second built-in corpus, `--corpus debian-docs`: about 130 MB of English from Debian's documentation and
/// dictionary packages — enough text that the longest runs of the learning-rate studies never see a token twice
/// (Shakespeare holds 1.6M training tokens). Fetched with `apt-get download` (nothing is installed), unpacked with
/// `dpkg-deb -x`, and prepared into `<root>/debian-docs/data/texts/` (`collect` says how the files are named so
/// that every package is in the validation split): plain-text sources are kept as they are (gzip-compressed ones
/// too: the corpus reader reads gzip), dictionaries are cut into pieces, HTML is reduced to its text. Each
/// package's version, the SHA-256 of its .deb and its licence are recorded in `texts/.complete` and described in
/// corpora/debian-docs/README.md. Debian revises packages, so a later fetch may get newer versions: the recorded
/// hashes say which text a cache was built from.
public enum DebianDocsCorpus {
    public static let name = "debian-docs"

    /// One package, the folder inside it and the file endings taken from it, and its licence (corpora/debian-docs's
    /// README says more).
    struct Source {
        let package: String, folder: String, suffixes: [String], licence: String
        init(_ package: String, _ folder: String, _ suffix: String, _ licence: String) {
            self.package = package; self.folder = folder; suffixes = [suffix]; self.licence = licence
        }
        var isHTML: Bool { suffixes == [".html"] }
    }

    static let sources: [Source] =
        [
            ("dict-gcide", "GPL-3+"), ("dict-wn", "WordNet 3.0"), ("dict-foldoc", "GPL-2+"),
            ("dict-jargon", "public domain"),
        ]
        .map { Source($0.0, "usr/share/dictd", ".dict.dz", $0.1) } + [
            Source("linux-doc-6.1", "usr/share/doc/linux-doc-6.1/Documentation", ".rst.gz", "GPL-2.0"),
            Source("python3.11-doc", "usr/share/doc/python3.11/html/_sources", ".rst.txt", "PSF-2.0"),
            Source("perl-doc", "usr/share/perl", ".pod", "Artistic-1.0 or GPL-1+"),
            Source("postgresql-doc-15", "usr/share/doc/postgresql-doc-15/html", ".html", "PostgreSQL"),
            Source("git-doc", "usr/share/doc/git-doc", ".txt", "GPL-2.0"),
        ]

    public static func textsDirectory(root: String) -> String { root + "/debian-docs/data/texts" }

    /// The prepared texts directory, fetching and preparing it first if it is not there yet.
    public static func ensure(root: String, log: (String) -> Void = { _ in }) throws -> String {
        let texts = textsDirectory(root: root)
        let fm = FileManager.default
        if fm.fileExists(atPath: texts + "/.complete") { return texts }
        log("fetching the debian-docs corpus (\(sources.count) Debian packages with apt-get download)…")
        // absolute: apt-get runs inside it
        let work = try Directories.working(
            in: URL(fileURLWithPath: root + "/debian-docs/data").standardizedFileURL.path, prefix: ".fetch-",
            fix: "pass a writable --data-dir")
        try Directories.create(work + "/unpacked", fix: "pass a writable --data-dir")
        defer { try? fm.removeItem(atPath: work) }
        let staged = work + "/texts"
        var record: [String] = []
        var total = 0
        for source in sources {
            try Tools.run(
                ["apt-get", "download", source.package], in: work,
                failure:
                    "could not download the Debian package \(source.package). The debian-docs corpus needs apt (a "
                    + "Debian system whose package lists are current: run apt-get update), or train on your own "
                    + "text with --corpus PATH")
            guard let deb = try fm.contentsOfDirectory(atPath: work).first(where: { isDeb($0, of: source.package) })
            else { throw UserError("apt-get download reported success but no \(source.package) .deb is in \(work)") }
            let version = try Tools.output(["dpkg-deb", "-f", work + "/" + deb, "Version"])
            let digest = SHA256.hex(SHA256.hash(try InputFile.read(work + "/" + deb, what: ".deb", limit: 1 << 30)))
            let unpacked = work + "/unpacked/" + source.package
            try Tools.run(
                ["dpkg-deb", "-x", work + "/" + deb, unpacked], in: work,
                failure: "could not unpack \(deb) (is dpkg-deb installed?)")
            let (files, bytes) = try collect(source, from: unpacked + "/" + source.folder, into: staged)
            guard files > 0 else { throw UserError("\(deb) holds no \(source.suffixes.joined(separator: ", ")) files") }
            total += bytes
            record.append("\(source.package) \(version) sha256 \(digest): \(files) files; \(source.licence)")
            log("  \(source.package) \(version): \(files) files, \(formatBytes(bytes))")
            try? fm.removeItem(atPath: unpacked)
            try? fm.removeItem(atPath: work + "/" + deb)
        }
        try AtomicFile.write(record.joined(separator: "\n") + "\n", to: staged + "/.complete")
        try? fm.removeItem(atPath: texts)
        try Directories.create(root + "/debian-docs/data", fix: "pass a writable --data-dir")
        try fm.moveItem(atPath: staged, toPath: texts)
        log("prepared \(formatBytes(total)) (as stored) in \(texts)")
        return texts
    }

    static func isDeb(_ file: String, of package: String) -> Bool {
        file.hasPrefix(package + "_") && file.hasSuffix(".deb")
    }

    /// Copies (or, for HTML, reduces to text) every file of `source` below `folder` into `staged`. Each file is
    /// named `<rank>-<package>--<relative path with "/" made "__">`, its rank (0000–9999) its position within its
    /// package scaled to the package's length: sorted by name, the files of all packages interleave evenly, so the
    /// validation split (the corpus's first tokens) samples every package alike. A dictionary (one large file) is
    /// cut into pieces of about a megabyte at entry boundaries first, so that it interleaves too. A gzip-compressed
    /// text keeps its compression (`.txt.gz`). Returns the number of files and the bytes written.
    static func collect(_ source: Source, from folder: String, into staged: String) throws -> (Int, Int) {
        guard let walker = FileManager.default.enumerator(atPath: folder) else { return (0, 0) }
        try Directories.create(staged, fix: "pass a writable --data-dir")
        var pieces: [(name: String, bytes: [UInt8], compressed: Bool)] = []
        for case let relative as String in walker {
            guard let suffix = source.suffixes.first(where: { relative.hasSuffix($0) }) else { continue }
            let flat = String(relative.dropLast(suffix.count)).replacingOccurrences(of: "/", with: "__")
            let path = folder + "/" + relative
            if suffix == ".dict.dz" {
                let text = try Tools.output(["gzip", "-dc", path])
                for (i, piece) in dictionaryPieces(text).enumerated() {
                    pieces.append((flat + String(format: "-%04d", i), Array(piece.utf8), false))
                }
                continue
            }
            let data = try InputFile.read(path, what: "documentation file", limit: 1 << 30)
            let text = source.isHTML ? Array(htmlText(String(decoding: data, as: UTF8.self)).utf8) : data
            pieces.append((flat, text, suffix.hasSuffix(".gz")))
        }
        pieces.sort { $0.name < $1.name }
        for (i, piece) in pieces.enumerated() {
            let rank = String(format: "%04d", i * 10_000 / pieces.count)
            let name = "\(rank)-\(source.package)--\(piece.name)" + (piece.compressed ? ".txt.gz" : ".txt")
            try AtomicFile.write(piece.bytes, to: staged + "/" + name)
        }
        return (pieces.count, pieces.reduce(0) { $0 + $1.bytes.count })
    }

    /// A dictd database's text cut into pieces of about `size` bytes, each ending where an entry ends (a line
    /// that is not indented follows).
    static func dictionaryPieces(_ text: String, size: Int = 1 << 20) -> [String] {
        var pieces: [String] = [], current = ""
        var lines = text.split(separator: "\n", omittingEmptySubsequences: false)
        if lines.last?.isEmpty == true { lines.removeLast() }  // the text's final line end
        for line in lines {
            if current.utf8.count >= size, let first = line.first, first != " ", first != "\t" {
                pieces.append(current)
                current = ""
            }
            current += line + "\n"
        }
        if !current.isEmpty { pieces.append(current) }
        return pieces
    }

    /// The text of an HTML page: the body without tags, scripts or styles, the common entities decoded, runs of
    /// blank lines made one.
    static func htmlText(_ html: String) -> String {
        var text = html
        if let body = text.range(of: "<body", options: .caseInsensitive) { text = String(text[body.lowerBound...]) }
        for element in ["script", "style"] {
            while let open = text.range(of: "<\(element)", options: .caseInsensitive),
                let close = text.range(
                    of: "</\(element)>", options: .caseInsensitive, range: open.upperBound..<text.endIndex)
            {
                text.removeSubrange(open.lowerBound..<close.upperBound)
            }
        }
        var out = "", inTag = false
        for c in text {
            if inTag {
                if c == ">" { inTag = false }
            } else if c == "<" {
                inTag = true
            } else {
                out.append(c)
            }
        }
        for (entity, value) in [
            ("&nbsp;", " "), ("&lt;", "<"), ("&gt;", ">"), ("&quot;", "\""), ("&#39;", "'"), ("&#x27;", "'"),
            ("&mdash;", "—"), ("&ndash;", "–"), ("&hellip;", "…"), ("&copy;", "©"), ("&amp;", "&"),
        ] {
            out = out.replacingOccurrences(of: entity, with: value)
        }
        var lines: [Substring] = []
        for line in out.split(separator: "\n", omittingEmptySubsequences: false) {
            let trimmed = line.drop { $0 == " " || $0 == "\t" }
            if trimmed.isEmpty && (lines.last?.isEmpty ?? true) { continue }
            lines.append(trimmed.isEmpty ? "" : line)
        }
        return lines.joined(separator: "\n").trimmingCharacters(in: .whitespacesAndNewlines) + "\n"
    }
}
