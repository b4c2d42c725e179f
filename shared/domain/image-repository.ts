/**
 * Image repositories: the shape a repository name may take (the distribution spec's), and which ones
 * a project may push to. The builds share one registry credential, so without a limit a project's
 * kubler.yaml could push into another project's repository.
 */

/**
 * `[registry[:port]/]path/name`, lowercase, as Docker references spell a repository; a `:` after the
 * registry would be a tag, which the build sets itself (`<name>:<sha>`).
 */
const PATH_COMPONENT = "[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*";
export const IMAGE_REPOSITORY = new RegExp(
  `^(?:[a-z0-9]+(?:[.-][a-z0-9]+)*(?::[0-9]+)?/)?${PATH_COMPONENT}(?:/${PATH_COMPONENT})*$`,
);

/**
 * The longest repository name, registry included, that references may have (distribution's
 * `NameTotalLengthMax`); skopeo refuses a longer one when it pushes, after the whole build:
 * https://github.com/distribution/reference/blob/main/reference.go
 */
export const MAX_IMAGE_REPOSITORY_LENGTH = 255;

/** Stands for the project's path (lower-cased, as registries name repositories) in `KUBLER_BUILD_IMAGES`. */
export const PROJECT_PATH_PLACEHOLDER = "{project_path}";

/**
 * Why `template` cannot say which repositories projects may push to, or null when it can.
 *
 * @example
 * imagesTemplateProblem("registry.example.com/apps"); // "must be an image repository with {project_path} in it once, ..."
 */
export function imagesTemplateProblem(template: string): string | null {
  const sample = template.replace(PROJECT_PATH_PLACEHOLDER, "group/app");
  if (template.split(PROJECT_PATH_PLACEHOLDER).length === 2 && IMAGE_REPOSITORY.test(sample)) return null;
  return `must be an image repository with ${PROJECT_PATH_PLACEHOLDER} in it once, like registry.gitlab.example.com/${PROJECT_PATH_PLACEHOLDER}, got ${JSON.stringify(template)}`;
}

/**
 * The repository `template` gives a project, under which its images must be (the repository itself
 * or a path below it, as GitLab's container registry names them).
 *
 * @example
 * projectImages("registry.gitlab.example.com/{project_path}", "Group/App"); // "registry.gitlab.example.com/group/app"
 */
export function projectImages(template: string, projectPath: string): string {
  return template.replace(PROJECT_PATH_PLACEHOLDER, projectPath.toLowerCase());
}

/**
 * Whether `image` is the project's repository or below it.
 *
 * @example
 * isProjectImage("registry.gitlab.example.com/group/app/api", "registry.gitlab.example.com/group/app"); // true
 */
export function isProjectImage(image: string, projectRepository: string): boolean {
  return image === projectRepository || image.startsWith(`${projectRepository}/`);
}
