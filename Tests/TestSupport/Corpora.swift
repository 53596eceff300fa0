import Common
import Foundation
import Kernels
import Tokenizer

/// A fresh temporary directory per test.
public func temporaryDirectory(_ tag: String = "ngpt") throws -> String {
    let path = FileManager.default.temporaryDirectory.appendingPathComponent("\(tag)-\(UUID().uuidString)").path
    try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
    return path
}

/// Deterministic pseudo-text with indentation, digits, punctuation and some non-ASCII, `lines` lines long.
public func syntheticText(lines: Int, seed: UInt64) -> String {
    let words = [
        "the", "king", "queen", "love", "death", "night", "sword", "crown", "speak", "thee", "thou", "art",
        "noble", "lord", "lady", "fair", "heaven", "earth", "blood", "honour", "Æthelred", "naïve", "café",
        "1599", "42", "3.14", "O!", "—", "“quoth”",
    ]
    var rng = SplitMix64(seed: seed)
    var out: [String] = []
    for i in 0..<lines {
        var line: [String] = []
        for _ in 0..<(3 + rng.below(10)) { line.append(words[rng.below(words.count)]) }
        let indent = i % 7 == 0 ? "    " : (i % 11 == 0 ? "\t" : "")
        out.append(indent + line.joined(separator: " ") + (i % 3 == 0 ? "." : ","))
        if i % 13 == 0 { out.append("") }
    }
    return out.joined(separator: "\n") + "\n"
}

/// Trains a small model on synthetic text and returns its path.
public func trainSmallModel(in dir: String, vocab: Int = 400, type: TokenizerTrainingOptions.ModelType = .bpe) throws
    -> String
{
    let input = dir + "/train.txt"
    try AtomicFile.write(syntheticText(lines: 3000, seed: 1), to: input)
    try SentencePieceModel.train(
        inputFile: input, modelPrefix: dir + "/m",
        options: TokenizerTrainingOptions(vocabSize: vocab, modelType: type))
    return dir + "/m.model"
}
