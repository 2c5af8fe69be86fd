// Several files for the batch routes' `images` field in the Swagger UI.
// Swagger 2.0 has no array of files, so the spec declares one `images` file field and the UI keeps
// only the first file chosen. The plugin lets that field take several files; the request
// interceptor then repeats the multipart field once per file, in the order they were chosen.
(function () {
  "use strict";
  // first file's identity -> every file chosen with it (FormData may hand back a copy of a File).
  const chosen = new Map();
  const identity = (file) => [file.name, file.size, file.lastModified, file.type].join("\u0000");

  function severalFilesField(Original, system) {
    const h = system.React.createElement;
    return function SeveralFiles(props) {
      // Swagger 2 parameters reach this component as a bare schema; the parameter's name is the
      // start of the description the UI passes along ("images" or "images - <description>").
      const schema = props.schema;
      const name = String(props.description || "").split(" - ")[0];
      if (!schema || schema.get("type") !== "file" || name !== "images") {
        return h(Original, props);
      }
      return h("input", {
        type: "file",
        multiple: true,
        accept: "image/*",
        "aria-label": "images (choose one or more files)",
        className: props.errors && props.errors.size ? "invalid" : "",
        disabled: props.disabled,
        onChange: (event) => {
          const files = Array.from(event.target.files);
          if (files.length) chosen.set(identity(files[0]), files);
          // The UI validates and stores the first file; the interceptor sends them all.
          props.onChange(files[0], props.keyName);
        },
      });
    };
  }

  function expand(request) {
    if (!(request.body instanceof FormData)) return request;
    const body = new FormData();
    let changed = false;
    for (const [name, value] of request.body.entries()) {
      const files = name === "images" && value instanceof File ? chosen.get(identity(value)) : null;
      if (files) {
        files.forEach((file) => body.append(name, file, file.name));
        changed = changed || files.length > 1;
      } else {
        body.append(name, value);
      }
    }
    if (changed) request.body = body;
    return request;
  }

  window.SeveralFiles = {
    plugin: () => ({ wrapComponents: { JsonSchema_string: severalFilesField } }),
    expand: expand,
  };
})();
