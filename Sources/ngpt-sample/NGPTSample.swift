import ArgumentParser
import Common
import Foundation
import Kernels
import NGPT
import Runs
import Sampling
import ToolSupport

extension DecodePrecision: ExpressibleByArgument {}

@main
struct NGPTSample: Tool {
    static let configuration = CommandConfiguration(
        commandName: "ngpt-sample",
        abstract: "Generate text from an ngpt checkpoint (nGPT or GPT), or score a text file.",
        discussion: """
            The prompt comes from --prompt, --prompt-file or standard input (when it is not a terminal); an empty \
            prompt starts a new document from BOS. Text streams to stdout as it is generated; a summary line \
            (tokens, tokens/s) goes to stderr. When the context fills up, the oldest half of the window is dropped \
            and generation continues on the newer half. With --perplexity FILE, prints the mean loss, perplexity \
            and bits per byte of FILE instead.
            """)

    @Option(
        help: ArgumentHelp(
            "A run directory (its best.safetensors, else latest.safetensors), a .safetensors checkpoint file, or a "
                + "Hugging Face directory (a Llama with tokenizer.model, or an nGPT from ngpt-export)."))
    var checkpoint: String

    @Option(help: "SentencePiece model. (default: tokenizer.model next to the checkpoint)") var tokenizer: String?
    @Option(help: "Prompt text. (default: empty — start from BOS)") var prompt: String?
    @Option(help: "Read the prompt from this UTF-8 file.") var promptFile: String?
    @Option(parsing: .unconditional, help: "Sampling temperature; 0 is greedy decoding.") var temperature: Float = 0.8
    @Option(parsing: .unconditional, help: "Keep only the k most likely tokens; 0 = off.") var topK: Int = 0
    @Option(
        parsing: .unconditional,
        help: "Nucleus sampling: keep the most likely tokens up to this cumulative probability, in (0, 1]; 1 = off.")
    var topP: Float = 1
    @Option(
        parsing: .unconditional,
        help: "Drop tokens less likely than this fraction of the most likely one, in [0, 1); 0 = off.") var minP:
        Float = 0
    @Option(parsing: .unconditional, help: "Penalise tokens already in the context (> 0; 1 = off; e.g. 1.1).")
    var repetitionPenalty: Float = 1
    @Option(
        parsing: .unconditional,
        help: "Seed of the sampler's generator (SplitMix64): the same seed gives the same text everywhere.")
    var seed: UInt64 = 1
    @Option(parsing: .unconditional, help: "Tokens to generate per sample.") var maxTokens: Int = 200
    @Option(help: "Stop when this text is generated (repeatable; the stop text is not printed).") var stop: [String] =
        []
    @Option(parsing: .unconditional, help: "Independent samples (seeds seed, seed+1, …).") var numSamples: Int = 1
    @Option(help: "Score this UTF-8 text file instead of generating: mean loss, perplexity, bits per byte.")
    var perplexity: String?
    @Option(parsing: .unconditional, help: "Thread budget; 0 = all cores.") var threads: Int = 0
    @Option(
        help:
            ArgumentHelp(
                "Decoding weights: bf16 (half the memory traffic, ~2–3× faster; logits within ~1 % of "
                    + "fp32) or fp32 (exact: equal to the training forward).")
    )
    var precision: DecodePrecision = .bf16

    func validate() throws {
        let settings = SamplerSettings(
            temperature: temperature, topK: topK, topP: topP, minP: minP,
            repetitionPenalty: repetitionPenalty, seed: seed)
        do { try settings.validate() } catch let e as UserError { throw ValidationError(e.message) }
        guard maxTokens >= 1 else { throw ValidationError("--max-tokens must be ≥ 1, got \(maxTokens)") }
        guard numSamples >= 1 else { throw ValidationError("--num-samples must be ≥ 1, got \(numSamples)") }
        guard threads >= 0 else { throw ValidationError("--threads must be ≥ 0, got \(threads)") }
        guard !stop.contains("") else {
            throw ValidationError("--stop must not be empty (an empty text would stop at once)")
        }
        guard prompt == nil || promptFile == nil else {
            throw ValidationError("give either --prompt or --prompt-file, not both")
        }
    }

    func run() throws {
        Threads.configure(threads: threads)
        printError(Threads.startupLine)
        let loaded = try LoadedModel.load(checkpoint: checkpoint, tokenizer: tokenizer, tokenizerFlag: "--tokenizer")
        if let w = loaded.tokenizerWarning { printError(w) }
        printError("\(loaded.model.config.kind.rawValue) from \(loaded.checkpointPath) (step \(loaded.step))")
        if let path = perplexity {
            let text = try readText(path)
            let r = try Perplexity.evaluate(text: text, model: loaded.model, tokenizer: loaded.tokenizer)
            print(
                String(
                    format:
                        "mean loss %.6f nats/token | perplexity %.2f | %.4f bits/byte | %d tokens, %d bytes, %d "
                        + "windows of %d",
                    r.meanLoss, r.perplexity, r.bitsPerByte, r.tokens, r.bytes, r.windows, loaded.model.config.context))
            return
        }
        let promptText: String
        if let p = prompt {
            promptText = p
        } else if let f = promptFile {
            promptText = try readText(f)
        } else if isatty(STDIN_FILENO) == 0 {
            let bytes = try InputFile.readStream(
                STDIN_FILENO, what: "the prompt on standard input", limit: Self.maxPromptBytes)
            guard let text = String(validating: bytes, as: UTF8.self) else {
                throw UserError("the prompt on standard input is not UTF-8 text")
            }
            promptText = text
        } else {
            promptText = ""
        }
        let generator = Generator(model: loaded.model, tokenizer: loaded.tokenizer, precision: precision)
        let (ids, dropped) = try generator.promptIds(promptText)
        if dropped > 0 {
            printError(
                "notice: the prompt is \(ids.count + dropped) tokens, longer than the context; keeping its last "
                    + "\(ids.count)"
            )
        }
        var totalTokens = 0, totalSeconds = 0.0
        for n in 0..<numSamples {
            if numSamples > 1 { write("--- sample \(n + 1) ---\n") }
            var sampler = Sampler(
                SamplerSettings(
                    temperature: temperature, topK: topK, topP: topP, minP: minP,
                    repetitionPenalty: repetitionPenalty, seed: seed &+ UInt64(n)))
            write(promptText)
            let result = try generator.generate(prompt: ids, maxTokens: maxTokens, sampler: &sampler, stop: stop) {
                write($0)
            }
            write("\n")
            totalTokens += result.tokens.count
            totalSeconds += result.seconds
        }
        printError(
            String(
                format: "%d tokens in %.2f s (%.0f tokens/s)", totalTokens, totalSeconds,
                Double(totalTokens) / max(totalSeconds, 1e-9)))
    }

    /// A prompt is cut to the context anyway; more than this on standard input is a mistake (`< /dev/zero`).
    static let maxPromptBytes = 16 << 20

    func readText(_ path: String) throws -> String {
        try InputFile.text(path, what: "text file", limit: 1 << 30)
    }
}

/// Unbuffered stdout, so text appears as it is generated.
func write(_ text: String) { FileHandle.standardOutput.write(Data(text.utf8)) }
