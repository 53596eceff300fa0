/// What the rest of ngpt needs of a tokenizer: ids for text and text for ids, the special ids, the pieces, and the
/// serialized model (hashed into token caches, copied into run directories). `SentencePieceModel` is its one
/// implementation today; another kind of tokenizer is one more type conforming to this, chosen where a model file
/// is loaded or trained (`DataPreparation`, `LoadedModel`).
public protocol TextTokenizer: AnyObject, Sendable {
    var vocabSize: Int { get }
    var bosId: Int32 { get }
    var eosId: Int32 { get }
    var unkId: Int32 { get }
    /// The serialized model, as loaded.
    var modelBytes: [UInt8] { get }

    /// Token ids of UTF-8 text.
    func encode(_ text: String) throws -> [Int32]
    func encode(bytes: UnsafeRawBufferPointer) throws -> [Int32]
    /// Ids of UTF-8 text encoded line by line with `newline` after each "\n", and the id count after each "\n".
    func encodeLines(_ text: UnsafeRawBufferPointer, newline: [Int32]) throws -> (ids: [Int32], lineEnds: [Int])
    /// UTF-8 bytes of ids (a prefix of a sequence may end inside a multi-byte character).
    func decodeBytes<C: Collection>(_ ids: C) throws -> [UInt8] where C.Element == Int32
    /// UTF-8 bytes each id stands for in decoded text (what bits per byte divide by).
    func byteLengths() throws -> [Int]
    /// The id of a piece (the unk id when there is no such piece).
    func id(ofPiece piece: String) -> Int32
    /// The piece of an id; ids outside 0..<vocabSize are an error.
    func piece(ofId id: Int32) throws -> String
}

extension TextTokenizer {
    /// Text of ids (invalid UTF-8 at a cut becomes U+FFFD).
    public func decode<C: Collection>(_ ids: C) throws -> String where C.Element == Int32 {
        String(decoding: try decodeBytes(ids), as: UTF8.self)
    }
}
