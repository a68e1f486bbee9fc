// Go's path.Clean as net/http's ServeMux applies it to request paths (a trailing slash is kept).

export function cleanPath(p: string): string {
  if (p === "") return "/";
  if (!p.includes("//") && !p.includes("/.")) return p;
  const out: string[] = [];
  for (const part of p.split("/")) {
    if (part === "" || part === ".") continue;
    if (part === "..") out.pop();
    else out.push(part);
  }
  let clean = `/${out.join("/")}`;
  if (p.endsWith("/") && clean !== "/") clean += "/";
  return clean;
}
