// The Tributech Node API's Swagger UI (at /demeter/api/, as on a Tributech node): the document
// comes from this server, and no validator or other outside service is contacted.
window.onload = function () {
  window.ui = SwaggerUIBundle({
    url: "/demeter/api/swagger/v1/swagger.json",
    dom_id: "#swagger-ui",
    deepLinking: true,
    validatorUrl: null,
    presets: [SwaggerUIBundle.presets.apis],
    layout: "BaseLayout",
  });
};
