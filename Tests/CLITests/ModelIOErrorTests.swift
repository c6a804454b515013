import Foundation
import Testing
import TestSupport
@testable import GPT2Kit

@Suite struct ModelIOErrorTests {
    @Test func configThatDisagreesWithTheWeightsNamesBothFiles() throws {
        let weights = Fixtures.path("micro-gpt2/model.safetensors")
        let config = Fixtures.path("tiny-gpt2/config.json")
        let location = try ModelLocation(path: weights, configPath: config)
        do {
            _ = try ModelIO.loadParameters(location)
            Issue.record("micro weights loaded against the tiny config")
        } catch let error as ModelLoadError {
            let message = "\(error)"
            #expect(message.contains(weights), "\(message)")
            #expect(message.contains(config), "\(message)")
            #expect(message.contains("transformer.wte.weight"), "\(message)")
        }
    }

    @Test func hugeConfigsAgainstMicroWeightsFailWithoutAllocating() throws {
        let folder = try Fixtures.temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: folder) }
        let weights = Fixtures.path("micro-gpt2/model.safetensors")
        for (json, isConfigError) in [(#"{"n_embd": 3000000000, "n_head": 1, "vocab_size": 2000000000}"#, true),
                                      (#"{"n_embd": 30000, "n_head": 1, "n_layer": 100}"#, true),
                                      (#"{"n_layer": 1000000000}"#, true),
                                      (#"{"n_embd": 4096, "n_head": 1, "n_layer": 48}"#, false)] {
            let config = folder + "/config.json"
            try Data(json.utf8).write(to: URL(fileURLWithPath: config))
            do {
                _ = try ModelIO.loadParameters(try ModelLocation(path: weights, configPath: config))
                Issue.record("\(json) loaded")
            } catch {
                if isConfigError { #expect(error is ConfigError, "\(error)") } else { #expect(error is ModelLoadError, "\(error)") }
            }
        }
    }

    @Test func missingPathsAndFoldersWithoutWeightsAreNamed() throws {
        #expect(throws: ModelLocationError.notFound(path: "/nonexistent/gpt2")) { try ModelLocation(path: "/nonexistent/gpt2") }
        let empty = try Fixtures.temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: empty) }
        #expect(throws: ModelLocationError.noWeights(folder: empty)) { try ModelLocation(path: empty) }
        let lonely = empty + "/weights.safetensors"
        try FileManager.default.copyItem(atPath: Fixtures.path("micro-gpt2/model.safetensors"), toPath: lonely)
        let location = try ModelLocation(path: lonely)
        #expect(throws: ModelLocationError.noConfig(weights: lonely)) { try ModelIO.readConfig(location) }
        #expect(throws: ModelLocationError.noTokenizer(folder: empty)) { try ModelIO.loadTokenizer(folder: empty) }
    }

    @Test func folderResolutionPrefersSafetensorsThenBinThenH5() throws {
        let location = try ModelLocation(path: Fixtures.path("micro-gpt2"))
        #expect(location.weightsKind == .safetensors)
        #expect(location.availableWeights.map { ($0 as NSString).lastPathComponent } == ["model.safetensors", "pytorch_model.bin", "tf_model.h5"])
        #expect(location.configPath == Fixtures.path("micro-gpt2") + "/config.json")
    }
}

@Suite struct RunFolderSafetyTests {
    @Test func exportingInAnotherFormatRemovesTheStaleWeights() throws {
        let dir = try Fixtures.temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let parameters = try ModelIO.loadParameters(try ModelLocation(path: Fixtures.path("micro-gpt2")))
        try ModelIO.writeFolder(parameters, to: dir, format: .safetensors)
        try ModelIO.writeFolder(parameters, to: dir, format: .pytorch)
        let names = Set(try FileManager.default.contentsOfDirectory(atPath: dir))
        #expect(names.contains("pytorch_model.bin"))
        #expect(!names.contains("model.safetensors"))
        #expect(try ModelLocation(path: dir).weightsKind == .pytorch)
        let attributes = try FileManager.default.attributesOfItem(atPath: dir + "/pytorch_model.bin")
        let mode = (attributes[.posixPermissions] as? NSNumber)?.intValue ?? 0
        #expect(mode & 0o044 != 0, "weights readable by group/others like a plain create (mode \(String(mode, radix: 8)))")
    }

    @Test func aTornSaveIsRefusedOnResume() throws {
        let dir = try Fixtures.temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let location = try ModelLocation(path: Fixtures.path("tiny-gpt2"))
        let model = try GPT2Model(parameters: try ModelIO.loadParameters(location))
        var options = TrainingOptions()
        options.steps = 2
        let trainer = try Trainer(model: model, examples: [TrainingExample(contextIDs: [1, 2, 3], labelIDs: [4, 5])],
                                  options: options, padTokenID: 50256)
        _ = try trainer.step()
        try TrainingRun.save(trainer, to: dir, format: .safetensors, config: model.config, dropout: nil,
                             tokenizerFiles: [], generationConfigPath: nil)
        let state = try TrainingRun.readState(folder: dir)
        try TrainingRun.verifyFiles(folder: dir, state: state)
        // A later save that crashed after replacing the weights but before its trainer_state.json:
        _ = try trainer.step()
        try ModelIO.writeWeights(model.parameters, to: dir + "/model.safetensors", format: .safetensors)
        #expect(throws: TrainingRunError.tornSave(path: dir + "/model.safetensors")) {
            try TrainingRun.verifyFiles(folder: dir, state: state)
        }
    }
}

@Suite struct AddedTokensFileTests {
    private func folder(addedTokens: String) throws -> String {
        let dir = try Fixtures.temporaryDirectory()
        for name in ["vocab.json", "merges.txt"] {
            try FileManager.default.copyItem(atPath: Fixtures.path("gpt2-tokenizer/" + name), toPath: dir + "/" + name)
        }
        try Data(addedTokens.utf8).write(to: URL(fileURLWithPath: dir + "/added_tokens.json"))
        return dir
    }

    @Test func addedTokensTakeTheirIDs() throws {
        let dir = try folder(addedTokens: #"{"[PAD]": 50257}"#)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let tokenizer = try ModelIO.loadTokenizer(folder: dir)
        #expect(tokenizer.encode("[PAD] hi") == [50257, 23105])
    }

    @Test(arguments: [#"{"[PAD]": 50300}"#, #"{"[PAD]": true}"#, "not json", #"["[PAD]"]"#])
    func malformedOrShiftedFilesAreErrorsNamingTheFile(content: String) throws {
        let dir = try folder(addedTokens: content)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        do {
            _ = try ModelIO.loadTokenizer(folder: dir)
            Issue.record("accepted added_tokens.json \(content)")
        } catch {
            #expect("\(error)".contains(dir + "/added_tokens.json"), "\(error)")
        }
    }
}
