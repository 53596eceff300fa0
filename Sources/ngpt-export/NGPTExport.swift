import ArgumentParser
import Export
import Foundation
import Runs
import ToolSupport

@main
struct NGPTExport: Tool {
    static let configuration = CommandConfiguration(
        commandName: "ngpt-export",
        abstract: "Export a trained model for other tools: a GPT as a Hugging Face Llama directory.",
        discussion: """
            The directory loads with transformers' AutoModelForCausalLM and AutoTokenizer, no custom code: \
            config.json, model.safetensors (Hugging Face's names and layouts), the SentencePiece tokenizer set to give \
            ngpt's ids, generation_config.json and a model card (README.md). It is written under a temporary name and \
            renamed when complete.
            """)

    @Argument(help: "A run directory (its best checkpoint) or a .safetensors checkpoint.") var checkpoint: String
    @Option(help: "Output format: hf (Hugging Face transformers).") var format: String = "hf"
    @Option(help: "The directory to write; it must not exist.") var out: String

    func run() throws {
        guard format == "hf" else { throw ValidationError("--format must be hf, got \(format)") }
        let loaded = try LoadedModel.load(checkpoint: checkpoint)
        try HuggingFaceExport.write(loaded, to: out)
        print("exported \(loaded.checkpointPath) (step \(loaded.step)) to \(out)/ as a Llama")
    }
}
