package org.phrx.validator;

import ca.uhn.fhir.context.FhirContext;
import ca.uhn.fhir.context.support.DefaultProfileValidationSupport;
import ca.uhn.fhir.context.support.IValidationSupport;
import ca.uhn.fhir.parser.IParser;
import ca.uhn.fhir.parser.LenientErrorHandler;
import ca.uhn.fhir.validation.FhirValidator;
import ca.uhn.fhir.validation.SingleValidationMessage;
import ca.uhn.fhir.validation.ValidationOptions;
import ca.uhn.fhir.validation.ValidationResult;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ArrayNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import java.io.BufferedInputStream;
import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.io.InputStream;
import java.io.PrintStream;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import org.hl7.fhir.common.hapi.validation.support.CommonCodeSystemsTerminologyService;
import org.hl7.fhir.common.hapi.validation.support.InMemoryTerminologyServerValidationSupport;
import org.hl7.fhir.common.hapi.validation.support.PrePopulatedValidationSupport;
import org.hl7.fhir.common.hapi.validation.support.SnapshotGeneratingValidationSupport;
import org.hl7.fhir.common.hapi.validation.support.UnknownCodeSystemWarningValidationSupport;
import org.hl7.fhir.common.hapi.validation.support.ValidationSupportChain;
import org.hl7.fhir.common.hapi.validation.validator.FhirInstanceValidator;
import org.hl7.fhir.instance.model.api.IBaseResource;
import org.hl7.fhir.utilities.npm.NpmPackage;

/**
 * One long-lived FHIR R4 validator process for PHRX's conformance tests.
 *
 * <p>HAPI's FhirInstanceValidator (the HL7 org.hl7.fhir.validation InstanceValidator) over the
 * R4 core definitions (hapi-fhir-validation-resources-r4) and the FHIR NPM packages named on the
 * command line (local .tgz files, never the network). No terminology server: codes are checked
 * against the code systems those packages hold; others are reported as not checkable.
 *
 * <p>Usage: {@code java -cp ... org.phrx.validator.ValidatorServer PACKAGE.tgz...}. Prints one
 * JSON line {@code {"ready":true,...}} once loaded, then for every request on stdin one JSON
 * result line on stdout. A request is a header line {@code PROFILE<TAB>SOURCE}: PROFILE is a
 * canonical URL or empty (the resource's own type), SOURCE is a file path, or {@code @N} followed
 * by exactly N bytes of UTF-8 JSON. End of input ends the process.
 */
public final class ValidatorServer {
  private static final ObjectMapper JSON = new ObjectMapper();
  private static final String[] CONFORMANCE_TYPES = {"StructureDefinition", "CodeSystem", "ValueSet"};

  private ValidatorServer() {}

  /**
   * The R4 core definitions (hapi-fhir-validation-resources-r4), also found by the versioned
   * canonical URLs IGs use ({@code http://hl7.org/fhir/StructureDefinition/Patient|4.0.1}).
   */
  static final class CoreDefinitions extends DefaultProfileValidationSupport {
    private static final String CORE_VERSION = "|4.0.1";

    CoreDefinitions(FhirContext ctx) {
      super(ctx);
    }

    private static String unversioned(String url) {
      return url != null && url.endsWith(CORE_VERSION)
          ? url.substring(0, url.length() - CORE_VERSION.length())
          : url;
    }

    @Override
    public IBaseResource fetchStructureDefinition(String url) {
      return super.fetchStructureDefinition(unversioned(url));
    }

    @Override
    public IBaseResource fetchValueSet(String url) {
      return super.fetchValueSet(unversioned(url));
    }

    @Override
    public IBaseResource fetchCodeSystem(String url) {
      return super.fetchCodeSystem(unversioned(url));
    }
  }

  public static void main(String[] args) throws IOException {
    PrintStream out = new PrintStream(System.out, true, StandardCharsets.UTF_8);
    // libraries print to stdout: keep the protocol's stream for our lines alone
    System.setOut(System.err);
    long start = System.nanoTime();
    FhirContext ctx = FhirContext.forR4();
    PrePopulatedValidationSupport packages = new PrePopulatedValidationSupport(ctx);
    ArrayNode loaded = JSON.createArrayNode();
    for (String arg : args) {
      loaded.add(load(ctx, packages, Path.of(arg)));
    }
    UnknownCodeSystemWarningValidationSupport unknownSystems =
        new UnknownCodeSystemWarningValidationSupport(ctx);
    unknownSystems.setNonExistentCodeSystemSeverity(IValidationSupport.IssueSeverity.WARNING);
    ValidationSupportChain chain =
        new ValidationSupportChain(
            new CoreDefinitions(ctx),
            packages,
            new CommonCodeSystemsTerminologyService(ctx),
            new InMemoryTerminologyServerValidationSupport(ctx),
            new SnapshotGeneratingValidationSupport(ctx),
            unknownSystems);
    FhirInstanceValidator instanceValidator = new FhirInstanceValidator(chain);
    instanceValidator.setErrorForUnknownProfiles(true);
    instanceValidator.setAnyExtensionsAllowed(true);
    FhirValidator validator = ctx.newValidator();
    validator.setConcurrentBundleValidation(false);
    validator.registerValidatorModule(instanceValidator);
    // pay the first validation's set-up (snapshots, FHIRPath engine) before "ready"
    validator.validateWithResult("{\"resourceType\":\"Patient\",\"id\":\"warm-up\"}");
    ObjectNode ready = JSON.createObjectNode();
    ready.put("ready", true);
    ready.put("loadMs", (System.nanoTime() - start) / 1_000_000);
    ready.set("packages", loaded);
    out.println(JSON.writeValueAsString(ready));

    InputStream in = new BufferedInputStream(System.in, 1 << 16);
    String header;
    while ((header = readLine(in)) != null) {
      if (header.isEmpty()) {
        continue;
      }
      out.println(JSON.writeValueAsString(handle(validator, in, header)));
    }
  }

  private static ObjectNode handle(FhirValidator validator, InputStream in, String header) {
    ObjectNode result = JSON.createObjectNode();
    int tab = header.indexOf('\t');
    String profile = tab < 0 ? "" : header.substring(0, tab);
    String source = tab < 0 ? header : header.substring(tab + 1);
    result.put("profile", profile);
    result.put("source", source);
    long start = System.nanoTime();
    try {
      String text;
      if (source.startsWith("@")) {
        text = new String(readExactly(in, Integer.parseInt(source.substring(1))), StandardCharsets.UTF_8);
      } else {
        text = Files.readString(Path.of(source), StandardCharsets.UTF_8);
      }
      ValidationOptions options = new ValidationOptions();
      if (!profile.isEmpty()) {
        options.addProfile(profile);
      }
      ValidationResult outcome = validator.validateWithResult(text, options);
      ArrayNode issues = result.putArray("issues");
      for (SingleValidationMessage message : outcome.getMessages()) {
        ObjectNode issue = issues.addObject();
        issue.put("severity", message.getSeverity().getCode());
        issue.put("location", message.getLocationString());
        if (message.getLocationLine() != null) {
          issue.put("line", message.getLocationLine());
          issue.put("col", message.getLocationCol());
        }
        issue.put("message", message.getMessage());
        issue.put("messageId", message.getMessageId());
      }
    } catch (IOException | RuntimeException error) {
      // the request could not be validated at all: say so as a fatal issue
      ArrayNode issues = result.putArray("issues");
      ObjectNode issue = issues.addObject();
      issue.put("severity", "fatal");
      issue.put("location", "(validator)");
      issue.put("message", error.getClass().getSimpleName() + ": " + error.getMessage());
    }
    result.put("ms", (System.nanoTime() - start) / 1_000_000.0);
    return result;
  }

  /** Adds a package's StructureDefinitions, CodeSystems and ValueSets; returns its summary. */
  private static ObjectNode load(FhirContext ctx, PrePopulatedValidationSupport into, Path tgz)
      throws IOException {
    long start = System.nanoTime();
    NpmPackage pkg;
    try (InputStream is = Files.newInputStream(tgz)) {
      pkg = NpmPackage.fromPackage(is);
    }
    IParser parser = ctx.newJsonParser().setParserErrorHandler(new LenientErrorHandler(false));
    int count = 0;
    List<String> skipped = new ArrayList<>();
    for (String file : pkg.listResources(CONFORMANCE_TYPES)) {
      try (InputStream is = pkg.loadResource(file)) {
        IBaseResource resource = parser.parseResource(is);
        into.addResource(resource);
        count++;
      } catch (RuntimeException error) {
        skipped.add(file + ": " + error.getMessage());
      }
    }
    ObjectNode summary = JSON.createObjectNode();
    summary.put("package", pkg.name() + "#" + pkg.version());
    summary.put("resources", count);
    summary.put("ms", (System.nanoTime() - start) / 1_000_000);
    ArrayNode skippedNode = summary.putArray("skipped");
    skipped.forEach(skippedNode::add);
    return summary;
  }

  private static String readLine(InputStream in) throws IOException {
    ByteArrayOutputStream line = new ByteArrayOutputStream();
    int b;
    while ((b = in.read()) != -1) {
      if (b == '\n') {
        return line.toString(StandardCharsets.UTF_8);
      }
      line.write(b);
    }
    return line.size() == 0 ? null : line.toString(StandardCharsets.UTF_8);
  }

  private static byte[] readExactly(InputStream in, int length) throws IOException {
    byte[] data = in.readNBytes(length);
    if (data.length != length) {
      throw new IOException("input ended after " + data.length + " of " + length + " bytes");
    }
    return data;
  }
}
