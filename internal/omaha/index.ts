// Omaha v3 as CoreOS's update_engine speaks it: both sides of the request and response documents.
export * from "./codes.ts";
export * from "./request.ts";
export * from "./response.ts";
export { XmlSyntaxError } from "./xml.ts";
