import ArgumentParser
import Export
import Foundation
import Runs
import ToolSupport

@main
struct NGPTExport: Tool {
    static let configuration = CommandConfiguration(
        commandName: "ngpt-export",
        abstract: "Export a trained model as a Hugging Face transformers directory (a GPT as a Llama).",
        discussion: """
            The directory loads with transformers' AutoModelForCausalLM and AutoTokenizer: config.json, \
            model.safetensors (Hugging Face's names and layouts), the SentencePiece tokenizer set to give ngpt's ids, \
            generation_config.json and a model card (README.md). A GPT is a Llama and needs no custom code; an nGPT \
            carries its modeling code (configuration_ngpt.py, modeling_ngpt.py; load with trust_remote_code=True). \
            The directory is written under a temporary name and renamed when complete. ngpt-sample --checkpoint DIR \
            and ngpt-train --init-from DIR read it back, as they read a Llama saved by transformers.
            """)

    @Argument(help: "A run directory (its best checkpoint) or a .safetensors checkpoint.") var checkpoint: String
    @Option(help: "Output format: hf (Hugging Face transformers).") var format: String = "hf"
    @Option(help: "The directory to write; it must not exist.") var out: String

    func run() throws {
        guard format == "hf" else { throw ValidationError("--format must be hf, got \(format)") }
        let loaded = try LoadedModel.load(checkpoint: checkpoint)
        try HuggingFaceExport.write(loaded, to: out)
        let what = loaded.model.config.kind == .gpt ? "a Llama" : "an nGPT with its modeling code"
        print("exported \(loaded.checkpointPath) (step \(loaded.step)) to \(out)/ as \(what)")
    }
}
